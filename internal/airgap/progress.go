package airgap

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Progress counts images and bytes done, and reports them: on a terminal a progress bar
// redrawn in place, otherwise one plain line per image.
type Progress struct {
	Out      io.Writer // nil: no report
	Terminal bool
	total    int
	done     atomic.Int64
	bytes    atomic.Int64
	start    time.Time
	mu       sync.Mutex
	stop     chan struct{}
	stopped  chan struct{}
}

// Start begins a run of total images.
func (p *Progress) Start(total int) {
	p.total, p.start = total, time.Now()
	if p.Out == nil || !p.Terminal {
		return
	}
	p.stop, p.stopped = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.stopped)
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
}

func (p *Progress) addBytes(n int64) { p.bytes.Add(n) }

// Bytes is the blob bytes read so far.
func (p *Progress) Bytes() int64 { return p.bytes.Load() }

// ImageDone counts one image.
func (p *Progress) ImageDone() {
	p.done.Add(1)
	if p.Out == nil {
		return
	}
	if p.Terminal {
		p.draw()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.Out, "progress: %d/%d images, %s read\n", p.done.Load(), p.total, mib(p.bytes.Load()))
}

// Finish stops the bar.
func (p *Progress) Finish() {
	if p.stop != nil {
		close(p.stop)
		<-p.stopped
		p.stop = nil
		p.draw()
		fmt.Fprintln(p.Out)
	}
}

func (p *Progress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	const width = 30
	done := int(p.done.Load())
	filled := 0
	if p.total > 0 {
		filled = done * width / p.total
	}
	secs := time.Since(p.start).Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(p.bytes.Load()) / secs / (1 << 20)
	}
	fmt.Fprintf(p.Out, "\r[%s%s] %d/%d images, %s, %.1f MiB/s ", strings.Repeat("#", filled), strings.Repeat(".", width-filled),
		done, p.total, mib(p.bytes.Load()), rate)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
