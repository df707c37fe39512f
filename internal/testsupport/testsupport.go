// Package testsupport holds the small test helpers several packages' tests need: a log
// buffer safe for concurrent writers, a wait on goroutines parked in a call, a listener
// that never answers, and certificate minting. Test code only; beyond the standard
// library it uses internal/toolpath.
package testsupport

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// LogBuffer collects log output; safe for concurrent use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything logged so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Drain returns everything logged since the last Drain and forgets it.
func (b *LogBuffer) Drain() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	return s
}

// Contains reports whether s was logged.
func (b *LogBuffer) Contains(s string) bool { return strings.Contains(b.String(), s) }

// Lines returns the logged lines containing every one of parts.
func (b *LogBuffer) Lines(parts ...string) []string {
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		keep := l != ""
		for _, p := range parts {
			keep = keep && strings.Contains(l, p)
		}
		if keep {
			out = append(out, l)
		}
	}
	return out
}

// WaitForCallers blocks until n goroutines are inside a call whose stack frame contains
// frame (e.g. "cache.(*Group[...]).Do("). It polls the goroutine dump: no timing
// assumption, the test's deadline bounds it.
func WaitForCallers(t testing.TB, frame string, n int) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for {
		size := runtime.Stack(buf, true)
		for size == len(buf) {
			buf = make([]byte, 2*len(buf))
			size = runtime.Stack(buf, true)
		}
		if strings.Count(string(buf[:size]), frame) >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// HangingAddr returns a 127.0.0.1 address that accepts connections and never answers
// (until the test ends).
func HangingAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		close(done)
		l.Close()
	})
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				<-done
				conn.Close()
			}()
		}
	}()
	return l.Addr().String()
}

// CreateCert signs tmpl with parent's key signer for pub and returns the parsed
// certificate.
func CreateCert(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
