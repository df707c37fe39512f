package main

import (
	"io"
	"net"
	"sync"
	"time"
)

// throttle is a TCP relay in front of the registry that paces the registry's answers to a
// fixed bandwidth, shared by every connection: one upstream link. Both sides of the
// benchmark reach the registry through it, so the comparison shows what pullgate costs
// when the upstream network, not the loopback CPU, is the bottleneck, as it is in
// deployments.
type throttle struct {
	ln     net.Listener
	target string
	pace   *pacer
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

// pacerBurst is how far behind schedule the pacer may fall and catch up.
const pacerBurst = 20 * time.Millisecond

// relayChunk is how much is paced at a time: small enough for smooth pacing.
const relayChunk = 64 << 10

func startThrottle(target string, mbit int) (*throttle, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &throttle{ln: ln, target: target, pace: &pacer{bytesPerSecond: float64(mbit) * 1e6 / 8},
		conns: map[net.Conn]struct{}{}}
	t.wg.Add(1)
	go t.accept()
	return t, nil
}

func (t *throttle) addr() string { return t.ln.Addr().String() }

func (t *throttle) accept() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.relay(c)
		}()
	}
}

func (t *throttle) track(c net.Conn, on bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if on {
		t.conns[c] = struct{}{}
	} else {
		delete(t.conns, c)
	}
}

func (t *throttle) relay(client net.Conn) {
	defer client.Close()
	upstream, err := net.Dial("tcp", t.target)
	if err != nil {
		return
	}
	defer upstream.Close()
	t.track(client, true)
	t.track(upstream, true)
	defer t.track(client, false)
	defer t.track(upstream, false)
	done := make(chan struct{})
	go func() { // requests are small: unpaced
		_, _ = io.Copy(upstream, client)
		_ = upstream.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	buf := make([]byte, relayChunk)
	for {
		n, err := upstream.Read(buf)
		if n > 0 {
			t.pace.wait(n)
			if _, werr := client.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = client.(*net.TCPConn).CloseWrite()
	<-done
}

// close stops accepting and cuts every relayed connection.
func (t *throttle) close() {
	_ = t.ln.Close()
	t.mu.Lock()
	for c := range t.conns {
		_ = c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// pacer spaces writes so that they average bytesPerSecond. A sleep that overshoots is
// made up by the next writes, up to pacerBurst, so that timer slack does not lower the rate.
type pacer struct {
	bytesPerSecond float64
	mu             sync.Mutex
	next           time.Time
}

func (p *pacer) wait(n int) {
	p.mu.Lock()
	now := time.Now()
	if now.Sub(p.next) > pacerBurst { // idle for a while: no credit beyond the burst
		p.next = now.Add(-pacerBurst)
	}
	p.next = p.next.Add(time.Duration(float64(n) / p.bytesPerSecond * float64(time.Second)))
	d := p.next.Sub(now)
	p.mu.Unlock()
	time.Sleep(d)
}
