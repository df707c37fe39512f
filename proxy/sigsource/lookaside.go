package sigsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strconv"

	"github.com/opencontainers/go-digest"
)

// RawSignature is one signature file as read, before its format is recognised.
type RawSignature struct {
	Data   []byte
	Origin string
}

// Lookaside reads signatures from lookaside storage (SPEC.md 3.4): the files
// <base>@<algo>=<hex>/signature-1, -2, ... up to the first missing one. HTTP requests carry
// no registry credentials.
type Lookaside struct {
	// Client performs http(s) requests; nil means a client with defaultLookasideTimeout.
	Client *http.Client
	Logger *slog.Logger
}

// ErrLookasideFetch is wrapped by every lookaside failure (not a missing signature: a
// failure), which makes the whole signature lookup fail.
var ErrLookasideFetch = errors.New("lookaside fetch failed")

// Read reads every signature stored for manifest digest d below base (the lookaside URL
// with the repository path already appended, as Settings.Lookaside), handing each to each
// as soon as it is read. An error from each stops the loop and fails the read, as
// containers/image stops at the first file it cannot use.
func (l *Lookaside) Read(ctx context.Context, base *url.URL, d digest.Digest, each func(RawSignature) error) error {
	for i := 1; ; i++ {
		// Reading signature-128 is how the end of 127 signatures is found; when it exists
		// too, the list is judged unreasonable.
		if i > maxLookasideSignatures+1 {
			return fmt.Errorf("%w: more than %d signatures at %s", ErrLookasideFetch, maxLookasideSignatures, base.Redacted())
		}
		u := signatureURL(base, d, i)
		data, found, err := l.readOne(ctx, u)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrLookasideFetch, u.Redacted(), err)
		}
		if !found {
			return nil
		}
		if err := each(RawSignature{Data: data, Origin: "lookaside " + u.Redacted()}); err != nil {
			return err
		}
	}
}

// signatureURL is <base>@<algo>=<hex>/signature-<n>.
func signatureURL(base *url.URL, d digest.Digest, n int) *url.URL {
	u := *base
	u.Path = fmt.Sprintf("%s@%s=%s/signature-%d", base.Path, d.Algorithm(), d.Encoded(), n)
	u.RawPath = ""
	return &u
}

func (l *Lookaside) readOne(ctx context.Context, u *url.URL) ([]byte, bool, error) {
	switch u.Scheme {
	case "file":
		return readFileSignature(u.Path)
	case "http", "https":
		return l.readHTTP(ctx, u)
	}
	return nil, false, fmt.Errorf("unsupported lookaside scheme %q", u.Scheme)
}

func readFileSignature(path string) ([]byte, bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	data, err := readLimited(f, maxSignatureSize)
	return data, err == nil, err
}

func (l *Lookaside) readHTTP(ctx context.Context, u *url.URL) ([]byte, bool, error) {
	client := l.Client
	if client == nil {
		client = &http.Client{Timeout: defaultLookasideTimeout}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, false, nil
	default:
		return nil, false, fmt.Errorf("status %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "text/html" && l.Logger != nil {
		// containers/image only warns here; the blob's first byte decides (and an HTML page
		// fails to parse, failing the lookup).
		l.Logger.Warn("lookaside answered with an HTML page", "url", u.Redacted())
	}
	data, err := readLimited(resp.Body, maxSignatureSize)
	return data, err == nil, err
}

// readLimited reads r fully, failing if it holds more than limit bytes.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errors.New("larger than " + strconv.FormatInt(limit, 10) + " bytes")
	}
	return data, nil
}
