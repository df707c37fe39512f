package sigsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/readfile"
	"github.com/pullgate/pullgate/proxy/upstream"
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
	// Client performs http(s) requests; nil means NewLookasideClient with default
	// timeouts. A client given here should come from NewLookasideClient: its redirect
	// rule is what keeps a lookaside from pointing pullgate at another host.
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
	b := newBudget()
	defer b.release()
	return l.read(ctx, base, d, b, each)
}

// read is Read within a lookup's budget: each file is read no further than what is left
// of it, and counts as one signature.
func (l *Lookaside) read(ctx context.Context, base *url.URL, d digest.Digest, b *budget, each func(RawSignature) error) error {
	for i := 1; ; i++ {
		// Reading signature-128 is how the end of 127 signatures is found; when it exists
		// too, the list is judged unreasonable.
		if i > maxLookasideSignatures+1 {
			return fmt.Errorf("%w: more than %d signatures at %s", ErrLookasideFetch, maxLookasideSignatures, redactedSource(base))
		}
		u := signatureURL(base, d, i)
		if err := b.wantSignature(); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrLookasideFetch, redactedSource(u), err)
		}
		if err := b.room(1); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrLookasideFetch, redactedSource(u), err)
		}
		data, found, err := l.readOne(ctx, u, b)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrLookasideFetch, redactedSource(u), err)
		}
		if !found {
			return nil
		}
		if err := b.signature(); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrLookasideFetch, redactedSource(u), err)
		}
		if err := each(RawSignature{Data: data, Origin: "lookaside " + redactedSource(u)}); err != nil {
			return err
		}
	}
}

// redactedSource names a signature source in messages and Origins, which reach any client
// in a 403: scheme://host/path, without the user name, password, query or fragment (a
// lookaside URL may carry a token in any of them), as upstream.RedactedURL names the
// upstream's own URLs.
func redactedSource(u *url.URL) string {
	if u != nil && u.Scheme == "file" && u.Host == "" {
		r := url.URL{Path: u.Path, RawPath: u.RawPath}
		return "file://" + r.EscapedPath()
	}
	return upstream.RedactedURL(u)
}

// signatureURL is <base>@<algo>=<hex>/signature-<n>.
func signatureURL(base *url.URL, d digest.Digest, n int) *url.URL {
	u := *base
	u.Path = fmt.Sprintf("%s@%s=%s/signature-%d", base.Path, d.Algorithm(), d.Encoded(), n)
	u.RawPath = ""
	return &u
}

func (l *Lookaside) readOne(ctx context.Context, u *url.URL, b *budget) ([]byte, bool, error) {
	switch u.Scheme {
	case "file":
		return readFileSignature(u.Path, b)
	case "http", "https":
		return l.readHTTP(ctx, u, b)
	}
	return nil, false, fmt.Errorf("unsupported lookaside scheme %q", u.Scheme)
}

// readFileSignature reads one file lookaside signature. A FIFO or a device there is an
// error, not a wait for a writer or an endless read.
func readFileSignature(path string, b *budget) ([]byte, bool, error) {
	f, _, err := readfile.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	data, err := readSignature(f, b)
	return data, err == nil, err
}

// defaultLookasideClient serves Lookasides built without a Client.
var defaultLookasideClient = NewLookasideClient(LookasideClientOptions{})

func (l *Lookaside) readHTTP(ctx context.Context, u *url.URL, b *budget) ([]byte, bool, error) {
	client := l.Client
	if client == nil {
		client = defaultLookasideClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, false, errors.New("invalid lookaside request")
	}
	resp, err := client.Do(req)
	if err != nil {
		if err := timedOut(ctx, client, err); err != nil {
			return nil, false, err
		}
		// *url.Error repeats the URL with its query (only the password is masked); the
		// caller names the source itself.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
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
		l.Logger.Warn("lookaside answered with an HTML page", "url", redactedSource(u))
	}
	data, err := readSignature(resp.Body, b)
	if err != nil {
		if terr := timedOut(ctx, client, err); terr != nil {
			err = terr
		}
	}
	return data, err == nil, err
}

// timedOut words err as the lookaside timeout when the client's deadline ended the
// request (in the dial, the headers or the body: Go words each differently), and returns
// nil otherwise. A deadline of the caller's own context is the caller's to name.
func timedOut(ctx context.Context, client *http.Client, err error) error {
	var ne net.Error
	if ctx.Err() != nil || client.Timeout <= 0 ||
		!(errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()) {
		return nil
	}
	return fmt.Errorf("no answer within %s (upstreamTimeouts.lookaside)", client.Timeout)
}

// readSignature reads one signature file: at most maxSignatureSize, and never past what
// is left of the lookup's budget (every byte is charged as it is read).
func readSignature(r io.Reader, b *budget) ([]byte, error) {
	limit := min(int64(maxSignatureSize), b.remaining())
	data, err := io.ReadAll(io.LimitReader(b.reader(r), limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errors.New("larger than " + strconv.FormatInt(limit, 10) + " bytes")
	}
	return data, nil
}
