package cache

import (
	"context"
	"time"

	"golang.org/x/sync/singleflight"
)

// Group runs one call per key at a time and hands its result to every concurrent caller
// (golang.org/x/sync/singleflight). Unlike a bare singleflight, a caller stops waiting when
// its own context ends, and the shared call does not die with the first caller: it runs under
// a context detached from any one request and bounded by Timeout.
type Group[V any] struct {
	// Timeout bounds each shared call; zero means one minute.
	Timeout time.Duration
	g       singleflight.Group
}

const defaultGroupTimeout = time.Minute

// Do calls fn once for concurrent callers with the same key. shared reports whether the
// result was handed to more than one caller.
func (g *Group[V]) Do(ctx context.Context, key string, fn func(ctx context.Context) (V, error)) (v V, shared bool, err error) {
	timeout := g.Timeout
	if timeout <= 0 {
		timeout = defaultGroupTimeout
	}
	ch := g.g.DoChan(key, func() (any, error) {
		callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		return fn(callCtx)
	})
	select {
	case <-ctx.Done():
		var zero V
		return zero, false, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			var zero V
			return zero, r.Shared, r.Err
		}
		return r.Val.(V), r.Shared, nil
	}
}
