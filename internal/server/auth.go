package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/pullgate/pullgate/internal/htpasswd"
	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/admission"
)

const (
	// maxAuthorizationHeader bounds the Authorization header read: Basic credentials of
	// the longest user name and password allowed take under 450 bytes.
	maxAuthorizationHeader = 1024
	// checkedCredentials bounds the cache of credentials that passed bcrypt, so that a
	// pull's dozens of requests pay for one comparison, not one each (a bcrypt check
	// takes milliseconds of CPU on purpose).
	checkedCredentials = 1024
	// authRealm is the realm of the basic challenge.
	authRealm = "pullgate"
	// authSlotWait bounds the wait for a comparison slot; beyond it the request is
	// answered 503 UNAVAILABLE with Retry-After: authSlotRetryAfter.
	authSlotWait       = 5 * time.Second
	authSlotRetryAfter = "1"
)

// authSlots is how many bcrypt comparisons run at once: half the CPUs, so that a flood
// of guesses from many addresses leaves the other half to serving pulls.
func authSlots() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// basicAuth requires HTTP basic credentials from auth.htpasswd on every request of the
// proxy listener. Failed checks are not cached; passed ones are, by an HMAC of user and
// password under a key made at start-up, until the user's line of the file changes or
// is removed (see Reload). Remembered credentials pass before any limit: a flood of
// guesses does not stop pulls of users already checked.
type basicAuth struct {
	path  string
	state atomic.Pointer[authState]
	// reload serialises Reload, which carries the remembered credentials over.
	reload sync.Mutex
	// slots bounds the bcrypt comparisons running at once, so that a flood of wrong
	// passwords costs a bounded share of the CPU.
	slots chan struct{}
	// failures bounds the failed comparisons per client address (nil: no limit).
	failures *loginLimiter
	// compare is the bcrypt check ((*htpasswd.File).Check; tests count its calls).
	compare func(f *htpasswd.File, user, password string) bool
	log     *slog.Logger
}

// authOutcome is what a credential check concluded.
type authOutcome int

const (
	authPassed authOutcome = iota
	// authRefused: no credentials, unusable ones or a wrong password (401).
	authRefused
	// authLimited: the client address has no failed comparison left (429).
	authLimited
	// authBusy: no comparison slot freed within authSlotWait (503).
	authBusy
)

// authState is one loaded file with the credentials checked against it (the
// remembered ones of the previous file whose user's line is unchanged included).
type authState struct {
	file    *htpasswd.File
	key     []byte
	checked *lru.Cache[[sha256.Size]byte, string]
}

// newBasicAuth reads the htpasswd file at path; failedPerMinute bounds the failed
// comparisons per client address and minute (0: no limit).
func newBasicAuth(path string, failedPerMinute int, log *slog.Logger) (*basicAuth, error) {
	a := &basicAuth{path: path, slots: make(chan struct{}, authSlots()),
		failures: newLoginLimiter(failedPerMinute, time.Now), compare: (*htpasswd.File).Check, log: log}
	if err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// Reload reads the file again; when it does not load, the running one stays. A file
// whose bytes did not change is not parsed again and changes nothing (a SIGHUP, or an
// edit of the policy or a key file, reloads every file). A changed file keeps the
// remembered credentials of the users whose line did not change; a user whose line
// changed or was removed is forgotten at once, so that editing the file revokes them.
func (a *basicAuth) Reload() error {
	a.reload.Lock()
	defer a.reload.Unlock()
	old := a.state.Load()
	var prev *htpasswd.File
	if old != nil {
		prev = old.file
	}
	f, err := htpasswd.Reread(a.path, prev)
	if err != nil {
		return fmt.Errorf("auth.htpasswd: %w", err)
	}
	if f == prev {
		return nil
	}
	checked, err := lru.New[[sha256.Size]byte, string](checkedCredentials)
	if err != nil {
		return err
	}
	if old == nil {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return err
		}
		a.state.Store(&authState{file: f, key: key, checked: checked})
		return nil
	}
	// A fresh cache, not the old one trimmed: a check against the old file that ends
	// after this adds to the old cache, which nothing reads any more.
	for _, sum := range old.checked.Keys() { // oldest first, so the order carries over
		if user, ok := old.checked.Peek(sum); ok && old.file.SameEntry(f, user) {
			checked.Add(sum, user)
		}
	}
	a.state.Store(&authState{file: f, key: old.key, checked: checked})
	return nil
}

// Files is the file Reload reads, for the watcher.
func (a *basicAuth) Files() []string { return []string{a.path} }

// wrap returns next behind the credential check. The user name reaches the access and
// decision lines through the request's context; the password is never logged.
// Refused requests are handed to observer (the access line and the metrics) with their
// status, without the user name they claimed (a mistyped password often lands there).
func (a *basicAuth) wrap(next http.Handler, observer proxy.Observer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		user, outcome, retryAfter := a.authenticate(r)
		status := http.StatusUnauthorized
		switch outcome {
		case authPassed:
			next.ServeHTTP(w, r.WithContext(admission.WithUser(r.Context(), user)))
			return
		case authRefused:
			unauthorized(w)
		case authLimited:
			status = http.StatusTooManyRequests
			w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter.Seconds())))
			_ = errcode.ServeJSON(w, errcode.ErrorCodeTooManyRequests.WithMessage(
				"too many failed logins from this address; retry after "+retryAfter.String()))
		case authBusy:
			status = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", authSlotRetryAfter)
			_ = errcode.ServeJSON(w, errcode.ErrorCodeUnavailable.WithMessage("too many logins being checked; retry"))
		}
		observer.Observe(context.WithoutCancel(r.Context()), proxy.Route{}, proxy.AccessRecord{Method: r.Method,
			Path: r.URL.Path, Status: status, Duration: time.Since(start), Client: r.RemoteAddr})
	})
}

// authenticate returns the user whose valid credentials r carries, or why not; with
// authLimited, how long until the client address may fail again.
func (a *basicAuth) authenticate(r *http.Request) (string, authOutcome, time.Duration) {
	user, password, ok := basicCredentials(r)
	if !ok {
		// Nothing to compare: no cost, so no token (a client's first, anonymous request
		// is how it learns the challenge).
		return "", authRefused, 0
	}
	st := a.state.Load()
	mac := hmac.New(sha256.New, st.key)
	mac.Write([]byte(user))
	mac.Write([]byte{0})
	mac.Write([]byte(password))
	var sum [sha256.Size]byte
	copy(sum[:], mac.Sum(nil))
	if u, hit := st.checked.Get(sum); hit && u == user {
		return user, authPassed, 0
	}
	client := clientKey(r.RemoteAddr)
	if wait, first := a.failures.take(client); wait > 0 {
		if first {
			a.log.Warn("failed logins limited", "client", client, "retryAfter", wait)
		}
		return "", authLimited, wait
	}
	if !a.acquire(r.Context()) {
		a.failures.refund(client)
		return "", authBusy, 0
	}
	valid := a.compare(st.file, user, password)
	<-a.slots
	if !valid {
		return "", authRefused, 0
	}
	a.failures.refund(client)
	st.checked.Add(sum, user)
	return user, authPassed, 0
}

// basicCredentials returns the user and password of r's one Basic Authorization header.
func basicCredentials(r *http.Request) (user, password string, ok bool) {
	values := r.Header.Values("Authorization")
	if len(values) != 1 || len(values[0]) > maxAuthorizationHeader {
		return "", "", false
	}
	scheme, encoded, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
	if err != nil {
		return "", "", false
	}
	user, password, ok = strings.Cut(string(raw), ":")
	if !ok || user == "" {
		return "", "", false
	}
	return user, password, true
}

// acquire waits for a comparison slot, at most authSlotWait.
func (a *basicAuth) acquire(ctx context.Context) bool {
	timer := time.NewTimer(authSlotWait)
	defer timer.Stop()
	select {
	case a.slots <- struct{}{}:
		return true
	case <-timer.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// unauthorized answers 401 with the basic challenge and an OCI UNAUTHORIZED body.
func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="`+authRealm+`"`)
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	_ = errcode.ServeJSON(w, errcode.ErrorCodeUnauthorized.WithMessage("authentication required: log in with a user of pullgate's auth.htpasswd"))
}
