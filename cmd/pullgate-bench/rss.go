package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// rssSampleInterval is how often the sampler reads VmRSS during a transfer.
const rssSampleInterval = 5 * time.Millisecond

// memory is a process's resident set, from /proc/<pid>/status (Linux only).
type memory struct {
	RSSKiB int64 `json:"rssKiB"` // VmRSS: now
	HWMKiB int64 `json:"hwmKiB"` // VmHWM: the peak so far
}

// readMemory reads VmRSS and VmHWM of pid.
func readMemory(pid int) (memory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, fmt.Errorf("read peak RSS (Linux /proc only): %w", err)
	}
	var m memory
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch key {
		case "VmRSS":
			dst = &m.RSSKiB
		case "VmHWM":
			dst = &m.HWMKiB
		default:
			continue
		}
		// "  12345 kB"
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("/proc/%d/status %s: %w", pid, key, err)
		}
		*dst = n
		found++
	}
	if found != 2 {
		return memory{}, fmt.Errorf("/proc/%d/status: VmRSS or VmHWM missing", pid)
	}
	return m, nil
}

// rssSampler records the largest VmRSS of a process seen while it runs.
type rssSampler struct {
	stopc chan struct{}
	wg    sync.WaitGroup
	maxKiB,
	samples int64
}

func startRSSSampler(pid int) *rssSampler {
	s := &rssSampler{stopc: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(rssSampleInterval)
		defer t.Stop()
		for {
			if m, err := readMemory(pid); err == nil {
				s.maxKiB = max(s.maxKiB, m.RSSKiB)
				s.samples++
			}
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends sampling and returns the largest VmRSS seen and the number of samples.
func (s *rssSampler) stop() (maxKiB, samples int64) {
	close(s.stopc)
	s.wg.Wait()
	return s.maxKiB, s.samples
}
