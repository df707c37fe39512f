package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestTTL(t *testing.T) {
	c, err := NewTTL[string, int](2)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }

	c.Add("accept", 1, time.Minute)
	c.Add("deny", 2, 10*time.Second)
	if v, ok := c.Get("accept"); !ok || v != 1 {
		t.Fatalf("Get(accept) = %v, %v", v, ok)
	}
	now = now.Add(10 * time.Second)
	if _, ok := c.Get("deny"); ok {
		t.Fatal("deny entry outlived its TTL")
	}
	if _, ok := c.Get("accept"); !ok {
		t.Fatal("accept entry expired early")
	}
	c.Add("zero", 3, 0)
	if _, ok := c.Get("zero"); ok {
		t.Fatal("a zero TTL stored an entry")
	}
	// Bounded: a third live entry evicts the least recently used.
	c.Add("b", 4, time.Minute)
	c.Add("c", 5, time.Minute)
	if c.Len() > 2 {
		t.Fatalf("Len = %d, want <= 2", c.Len())
	}
	c.Purge()
	if c.Len() != 0 {
		t.Fatal("Purge left entries")
	}
	if _, err := NewTTL[string, int](0); err == nil {
		t.Fatal("size 0 accepted")
	}
}

func TestGroupRunsOnce(t *testing.T) {
	var g Group[int]
	var calls, entered atomic.Int32
	release := make(chan struct{})
	fn := func(ctx context.Context) (int, error) {
		calls.Add(1)
		<-release
		return 42, nil
	}
	const n = 20
	var wg sync.WaitGroup
	results := make([]int, n)
	shared := make([]bool, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			entered.Add(1)
			results[i], shared[i], _ = g.Do(context.Background(), "k", fn)
		}()
	}
	// The call is held open until every caller is about to join it; the short settle
	// covers the few instructions between the counter and DoChan.
	for entered.Load() < n {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if got := calls.Load(); got != 1 {
		t.Fatalf("fn ran %d times, want 1", got)
	}
	for i := range n {
		if results[i] != 42 || !shared[i] {
			t.Fatalf("caller %d got %d (shared %v)", i, results[i], shared[i])
		}
	}
}

func TestGroupCallerContext(t *testing.T) {
	var g Group[int]
	release := make(chan struct{})
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := g.Do(ctx, "k", func(ctx context.Context) (int, error) { <-release; return 1, nil })
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestGroupDetachedFromFirstCaller(t *testing.T) {
	var g Group[int]
	release := make(chan struct{})
	running := make(chan struct{})
	sawErr := make(chan error, 1)
	fn := func(ctx context.Context) (int, error) {
		close(running)
		<-release
		sawErr <- ctx.Err()
		return 7, nil
	}
	first, cancel := context.WithCancel(context.Background())
	firstDone := make(chan error, 1)
	go func() { _, _, err := g.Do(first, "k", fn); firstDone <- err }()
	<-running
	cancel() // the first caller leaves while the shared call is running
	if err := <-firstDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller err = %v", err)
	}
	close(release)
	if err := <-sawErr; err != nil {
		t.Fatalf("shared call's context ended with the first caller: %v", err)
	}
}

func TestGroupTimeout(t *testing.T) {
	g := Group[int]{Timeout: time.Millisecond}
	_, _, err := g.Do(context.Background(), "k", func(ctx context.Context) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}
