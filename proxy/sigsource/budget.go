package sigsource

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// ErrSignatureBudget is wrapped when one lookup would read more signatures or bytes than
// maxSignaturesPerImage and maxSignatureBytesPerImage allow, or when the process already
// holds maxInFlightSignatureBytes for lookups in progress. The lookup fails (503): a
// partial list is never returned.
var ErrSignatureBudget = errors.New("signature lookup over budget")

// bytePool counts the bytes held by lookups in progress in this process.
type bytePool struct {
	mu          sync.Mutex
	used, limit int64
}

// inFlight is shared by every Finder (a reload makes a new Finder while lookups of the
// old one still run).
var inFlight = &bytePool{limit: maxInFlightSignatureBytes}

func (p *bytePool) take(n int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used+n > p.limit {
		return false
	}
	p.used += n
	return true
}

func (p *bytePool) give(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.used -= n
}

// budget is what one lookup may still read, across all its sources. It is used by one
// goroutine at a time (the sources are read in order).
type budget struct {
	count int   // signatures left
	bytes int64 // bytes left
	held  int64 // bytes taken from pool
	pool  *bytePool
}

func newBudget() *budget {
	return &budget{count: maxSignaturesPerImage, bytes: maxSignatureBytesPerImage, pool: inFlight}
}

// release gives the lookup's bytes back to the pool once it is over.
func (b *budget) release() {
	b.pool.give(b.held)
	b.held = 0
}

// signature counts one more signature, failing beyond maxSignaturesPerImage. It is
// called before the signature is fetched.
func (b *budget) signature() error {
	if err := b.wantSignature(); err != nil {
		return err
	}
	b.count--
	return nil
}

// wantSignature fails when no further signature may be counted; the lookaside checks it
// before each file, whose absence (the end of the list) is only known once asked for.
func (b *budget) wantSignature() error {
	if b.count <= 0 {
		return fmt.Errorf("%w: more than %d signatures", ErrSignatureBudget, maxSignaturesPerImage)
	}
	return nil
}

// room fails when n more bytes would pass the budget; it is checked before a fetch whose
// size is known (a blob's descriptor) or, with n = 1, before any other fetch.
func (b *budget) room(n int64) error {
	if n > b.bytes {
		return fmt.Errorf("%w: more than %d bytes of signatures", ErrSignatureBudget, maxSignatureBytesPerImage)
	}
	return nil
}

// remaining is how many bytes the next read may return.
func (b *budget) remaining() int64 { return b.bytes }

// charge accounts for n bytes read (and held).
func (b *budget) charge(n int64) error {
	if err := b.room(n); err != nil {
		return err
	}
	if !b.pool.take(n) {
		return fmt.Errorf("%w: %d bytes of signatures are being read by other lookups", ErrSignatureBudget, maxInFlightSignatureBytes)
	}
	b.bytes -= n
	b.held += n
	return nil
}

// reader charges every byte read through it, so that a body is refused as soon as it
// passes the budget, not once it has been read whole.
func (b *budget) reader(r io.Reader) io.Reader { return &budgetReader{r: r, b: b} }

type budgetReader struct {
	r   io.Reader
	b   *budget
	err error
}

func (r *budgetReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.r.Read(p)
	if n > 0 {
		if cerr := r.b.charge(int64(n)); cerr != nil {
			r.err = cerr
			return 0, cerr
		}
	}
	return n, err
}
