package atonce

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

func TestRunRunsAll(t *testing.T) {
	const n = 16
	var ran atomic.Int64
	_, errs := Run(n, func(start <-chan struct{}) error {
		<-start
		ran.Add(1)
		return nil
	})
	if len(errs) != 0 {
		t.Fatalf("errors %v, want none", errs)
	}
	if ran.Load() != n {
		t.Fatalf("%d goroutines ran, want %d", ran.Load(), n)
	}
}

func TestRunReturnsTheErrors(t *testing.T) {
	var i atomic.Int64
	boom := errors.New("boom")
	_, errs := Run(5, func(start <-chan struct{}) error {
		<-start
		if k := i.Add(1); k%2 == 0 {
			return fmt.Errorf("client %d: %w", k, boom)
		}
		return nil
	})
	if len(errs) != 2 {
		t.Fatalf("errors %v, want 2", errs)
	}
	for _, err := range errs {
		if !errors.Is(err, boom) {
			t.Errorf("error %v, want one wrapping %v", err, boom)
		}
	}
}
