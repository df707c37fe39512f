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
	"strings"
	"time"

	"sync/atomic"

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
)

// basicAuth requires HTTP basic credentials from auth.htpasswd on every request of the
// proxy listener. Failed checks are not cached; passed ones are, by an HMAC of user and
// password under a key made at start-up, until the file is reloaded.
type basicAuth struct {
	path  string
	state atomic.Pointer[authState]
	// slots bounds the bcrypt comparisons running at once, so that a flood of wrong
	// passwords costs a bounded share of the CPU.
	slots chan struct{}
	log   *slog.Logger
}

// authState is one loaded file with the credentials checked against it.
type authState struct {
	file    *htpasswd.File
	key     []byte
	checked *lru.Cache[[sha256.Size]byte, string]
}

func newBasicAuth(path string, log *slog.Logger) (*basicAuth, error) {
	a := &basicAuth{path: path, slots: make(chan struct{}, max(2, runtime.GOMAXPROCS(0))), log: log}
	if err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// Reload reads the file again; when it does not load, the running one stays.
func (a *basicAuth) Reload() error {
	f, err := htpasswd.ReadFile(a.path)
	if err != nil {
		return fmt.Errorf("auth.htpasswd: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	checked, err := lru.New[[sha256.Size]byte, string](checkedCredentials)
	if err != nil {
		return err
	}
	a.state.Store(&authState{file: f, key: key, checked: checked})
	return nil
}

// Files is the file Reload reads, for the watcher.
func (a *basicAuth) Files() []string { return []string{a.path} }

// wrap returns next behind the credential check. The user name reaches the access and
// decision lines through the request's context; the password is never logged.
// Refused requests are handed to observer (the access line and the metrics) as 401s,
// without the user name they claimed (a mistyped password often lands there).
func (a *basicAuth) wrap(next http.Handler, observer proxy.Observer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		user, ok := a.authenticate(r)
		if !ok {
			unauthorized(w)
			observer.Observe(context.WithoutCancel(r.Context()), proxy.Route{}, proxy.AccessRecord{Method: r.Method,
				Path: r.URL.Path, Status: http.StatusUnauthorized, Duration: time.Since(start), Client: r.RemoteAddr})
			return
		}
		next.ServeHTTP(w, r.WithContext(admission.WithUser(r.Context(), user)))
	})
}

// authenticate returns the user whose valid credentials r carries.
func (a *basicAuth) authenticate(r *http.Request) (string, bool) {
	values := r.Header.Values("Authorization")
	if len(values) != 1 || len(values[0]) > maxAuthorizationHeader {
		return "", false
	}
	scheme, encoded, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
	if err != nil {
		return "", false
	}
	user, password, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" {
		return "", false
	}
	st := a.state.Load()
	mac := hmac.New(sha256.New, st.key)
	mac.Write([]byte(user))
	mac.Write([]byte{0})
	mac.Write([]byte(password))
	var sum [sha256.Size]byte
	copy(sum[:], mac.Sum(nil))
	if u, hit := st.checked.Get(sum); hit && u == user {
		return user, true
	}
	if !a.acquire(r.Context()) {
		return "", false
	}
	valid := st.file.Check(user, password)
	<-a.slots
	if !valid {
		return "", false
	}
	st.checked.Add(sum, user)
	return user, true
}

func (a *basicAuth) acquire(ctx context.Context) bool {
	select {
	case a.slots <- struct{}{}:
		return true
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
