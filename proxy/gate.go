package proxy

import (
	"errors"
)

// ErrNoGate is returned by New when Options.Gate is nil: pullgate never serves unchecked
// content by default.
var ErrNoGate = errors.New("proxy: no enforcement gate configured")
