package store

import "errors"

// Sentinels; every error the store returns for these conditions wraps one of them.
var (
	// ErrNotFound: the store does not hold it (for that repository).
	ErrNotFound = errors.New("not found in the content store")
	// ErrCorrupt: what was kept no longer matches its digest or does not parse; it was
	// dropped, so the caller fetches it again.
	ErrCorrupt = errors.New("content store entry corrupt")
	// ErrUnavailable: the store cannot be read or written.
	ErrUnavailable = errors.New("content store unavailable")
	// ErrConfig: the storage configuration is refused.
	ErrConfig = errors.New("content store configuration")
	// ErrInvalid: an argument the store refuses (a name it cannot hold, a digest that is
	// not sha256, bytes that do not match their digest, a bound exceeded).
	ErrInvalid = errors.New("refused by the content store")
)
