package upstream

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// kindTransport sends each request through the wrapped transport of its kind. A token
// request goes to the same connections as the API (go-containerregistry fetches tokens
// through the transport it is given), so it is told apart by its URL: a realm that one of
// the upstream's 401 challenges named, or a redirect of such a request. Everything else,
// the API and its redirects to storage, is an upstream request.
type kindTransport struct {
	upstream, token http.RoundTripper

	mu     sync.Mutex
	realms map[string]bool // scheme://host/path of the realms named, at most maxTokenRealms
}

func newKindTransport(upstream, token http.RoundTripper) *kindTransport {
	return &kindTransport{upstream: upstream, token: token, realms: map[string]bool{}}
}

func (t *kindTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.isToken(req) {
		return t.token.RoundTrip(req)
	}
	resp, err := t.upstream.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		t.learn(resp.Header.Values("WWW-Authenticate"))
	}
	return resp, err
}

// isToken reports whether req, or the request it is a redirect of, goes to a known realm.
func (t *kindTransport) isToken(req *http.Request) bool {
	for hops := 0; req != nil && hops <= maxRedirects; hops++ {
		t.mu.Lock()
		known := t.realms[realmKey(req.URL)]
		t.mu.Unlock()
		if known {
			return true
		}
		if req.Response == nil {
			return false
		}
		req = req.Response.Request
	}
	return false
}

// learn remembers the realms of Bearer challenges.
func (t *kindTransport) learn(challenges []string) {
	for _, c := range challenges {
		realm, ok := bearerRealm(c)
		if !ok {
			continue
		}
		u, err := url.Parse(realm)
		if err != nil {
			continue
		}
		t.mu.Lock()
		if len(t.realms) < maxTokenRealms {
			t.realms[realmKey(u)] = true
		}
		t.mu.Unlock()
	}
}

func realmKey(u *url.URL) string { return u.Scheme + "://" + u.Host + u.Path }

// bearerRealm returns the realm parameter of a Bearer challenge
// (Bearer realm="https://auth.example/token",service="...").
func bearerRealm(challenge string) (string, bool) {
	scheme, params, _ := strings.Cut(strings.TrimSpace(challenge), " ")
	if !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	for params != "" {
		var key, value string
		key, params, _ = strings.Cut(strings.TrimLeft(params, " ,"), "=")
		if strings.HasPrefix(params, `"`) {
			value, params, _ = strings.Cut(params[1:], `"`)
		} else {
			value, params, _ = strings.Cut(params, ",")
		}
		if strings.EqualFold(strings.TrimSpace(key), "realm") {
			return value, value != ""
		}
	}
	return "", false
}
