package server

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pullgate/pullgate/internal/htpasswd"
	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/proxy"
)

func TestClientKey(t *testing.T) {
	for _, tt := range []struct{ remote, want string }{
		{"192.0.2.1:1234", "192.0.2.1"},
		{"[::ffff:192.0.2.1]:1234", "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:443", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:5000", "fe80::/64"},
		{"192.0.2.1", "192.0.2.1"},
		{"not an address", "not an address"},
	} {
		if got := clientKey(tt.remote); got != tt.want {
			t.Errorf("clientKey(%q) = %q, want %q", tt.remote, got, tt.want)
		}
	}
}

// TestLoginLimiter: an address has perMinute failures, refilled at perMinute a minute;
// a refund returns a reserved one; addresses are counted apart; the first refusal of a
// window is told apart from the next ones; 0 means no limit.
func TestLoginLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLoginLimiter(3, func() time.Time { return now })
	for i := range 3 {
		if wait, _ := l.take("a"); wait != 0 {
			t.Fatalf("failure %d refused: %s", i+1, wait)
		}
	}
	wait, first := l.take("a")
	if wait != 20*time.Second || !first {
		t.Fatalf("4th failure: wait %s first %v, want 20s, first", wait, first)
	}
	if wait, first := l.take("a"); wait != 20*time.Second || first {
		t.Fatalf("5th failure: wait %s first %v, want 20s, not first", wait, first)
	}
	if wait, _ := l.take("b"); wait != 0 {
		t.Fatalf("another address refused: %s", wait)
	}
	now = now.Add(5 * time.Second)
	if wait, _ := l.take("a"); wait != 15*time.Second {
		t.Fatalf("after 5 s: wait %s, want 15s", wait)
	}
	now = now.Add(15 * time.Second)
	if wait, _ := l.take("a"); wait != 0 {
		t.Fatalf("after 20 s: refused %s", wait)
	}
	l.refund("a")
	if wait, _ := l.take("a"); wait != 0 {
		t.Fatalf("after a refund: refused %s", wait)
	}
	now = now.Add(time.Hour)
	for i := range 3 {
		if wait, _ := l.take("a"); wait != 0 {
			t.Fatalf("an hour later, failure %d refused: the allowance must refill to 3, not more", i+1)
		}
	}
	if wait, _ := l.take("a"); wait == 0 {
		t.Fatal("an hour later, a 4th failure was allowed: the allowance grew past perMinute")
	}
	if l := newLoginLimiter(0, time.Now); l != nil {
		t.Fatal("0 must mean no limiter")
	}
	var none *loginLimiter
	if wait, _ := none.take("a"); wait != 0 {
		t.Fatal("no limiter refused")
	}
}

// TestBasicAuthLimitsFailedLogins: after perMinute wrong passwords from one address the
// next request is 429 TOOMANYREQUESTS with Retry-After and runs no bcrypt comparison,
// while remembered credentials, requests without credentials (401, no comparison) and
// other addresses are served as before; right credentials give their token back.
func TestBasicAuthLimitsFailedLogins(t *testing.T) {
	a, compares := countingAuth(t, 3)
	now := time.Unix(1000, 0)
	a.failures.now = func() time.Time { return now }
	var seen []int
	obs := observerFunc(func(_ context.Context, _ proxy.Route, rec proxy.AccessRecord) { seen = append(seen, rec.Status) })
	srv := a.wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), obs)
	do := func(remote, user, pw string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/v2/", nil)
		req.RemoteAddr = remote
		if user != "" {
			req.SetBasicAuth(user, pw)
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec
	}
	const attacker, other = "192.0.2.7:40000", "198.51.100.1:40000"
	if rec := do(attacker, "alice", "pw"); rec.Code != http.StatusOK {
		t.Fatalf("right password: %d", rec.Code)
	}
	for i := range 3 {
		if rec := do(attacker, "alice", "guess"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i+1, rec.Code)
		}
	}
	before := compares.Load()
	for range 20 {
		rec := do("192.0.2.7:40001", "alice", "guess") // another port of the same address
		if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "20" ||
			!strings.Contains(rec.Body.String(), `"code":"TOOMANYREQUESTS"`) {
			t.Fatalf("limited guess: %d %v %s", rec.Code, rec.Header(), rec.Body)
		}
	}
	if n := compares.Load() - before; n != 0 {
		t.Fatalf("%d bcrypt comparisons ran for limited guesses", n)
	}
	if rec := do(attacker, "alice", "pw"); rec.Code != http.StatusOK {
		t.Fatalf("remembered credentials from the limited address: %d", rec.Code)
	}
	if rec := do(attacker, "", ""); rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") == "" {
		t.Fatalf("no credentials from the limited address: %d, want the 401 challenge", rec.Code)
	}
	if rec := do(other, "alice", "guess"); rec.Code != http.StatusUnauthorized {
		t.Fatalf("another address: %d, want 401", rec.Code)
	}
	if compares.Load()-before != 1 {
		t.Fatalf("comparisons: %d, want 1 (the other address's guess)", compares.Load()-before)
	}
	now = now.Add(20 * time.Second)
	if rec := do(attacker, "alice", "guess"); rec.Code != http.StatusUnauthorized {
		t.Fatalf("20 s later: %d, want 401", rec.Code)
	}
	if seen[len(seen)-1] != http.StatusUnauthorized || seen[5] != http.StatusTooManyRequests {
		t.Fatalf("observed statuses %v", seen)
	}
}

// TestBasicAuthSlots: comparisons run at most authSlots() at once whatever the number
// of addresses guessing.
func TestBasicAuthSlots(t *testing.T) {
	a, _ := countingAuth(t, 0)
	var running, peak atomic.Int32
	check := a.compare
	a.compare = func(f *htpasswd.File, user, password string) bool {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		defer running.Add(-1)
		return check(f, user, password)
	}
	srv := a.wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), observerFunc(func(context.Context, proxy.Route, proxy.AccessRecord) {}))
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			req := httptest.NewRequest(http.MethodGet, "/v2/", nil)
			req.RemoteAddr = "192.0.2." + string(rune('1'+i%9)) + ":1"
			req.SetBasicAuth("alice", "guess")
			srv.ServeHTTP(httptest.NewRecorder(), req)
		})
	}
	wg.Wait()
	if p := peak.Load(); p < 1 || int(p) > authSlots() {
		t.Fatalf("%d comparisons ran at once, want 1 to %d", p, authSlots())
	}
}

// countingAuth is basic auth over a one-user file (alice:pw at bcrypt's cost 10) whose
// comparisons are counted.
func countingAuth(t *testing.T, perMinute int) (*basicAuth, *atomic.Int64) {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	testsupport.WriteFile(t, path, "alice:"+string(h)+"\n")
	a, err := newBasicAuth(path, perMinute, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	a.compare = func(f *htpasswd.File, user, password string) bool {
		n.Add(1)
		return f.Check(user, password)
	}
	return a, &n
}
