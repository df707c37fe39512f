// Package atonce runs a crowd of goroutines released together: each may get ready, then
// waits for a start signal given once all of them are started, and returns an error. The
// integration tests use it for concurrent first pulls, pullgate-bench for its crowd and
// burst pulls; it does not link the testing package.
package atonce

import (
	"sync"
	"time"
)

// Run starts n goroutines of run, then closes start: each can get ready and wait for it,
// so that their work begins together. It returns how long from closing start until the
// last one returned, and the errors that were not nil.
func Run(n int, run func(start <-chan struct{}) error) (time.Duration, []error) {
	start := make(chan struct{})
	results := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i] = run(start) })
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	took := time.Since(t0)
	var errs []error
	for _, err := range results {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return took, errs
}
