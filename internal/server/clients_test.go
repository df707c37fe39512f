package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/internal/testsupport"
)

// TestWrapTransportSeesEveryOutboundClient: one pull through the built handler reaches
// the upstream's API, its token endpoint (on the upstream's own host, as with quay.io's
// /v2/auth, so only the challenge tells it apart) and the lookaside, and each request
// goes through Options.WrapTransport under its kind and name.
func TestWrapTransportSeesEveryOutboundClient(t *testing.T) {
	const registry = "registry.test"
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + digest.FromString("c").String() + `","size":1},"layers":[]}`)
	var up *httptest.Server
	up = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/auth":
			fmt.Fprint(w, `{"token":"t"}`)
		case r.Header.Get("Authorization") != "Bearer t":
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+up.URL+`/v2/auth",service="test"`)
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/v2/":
		case r.URL.Path == "/v2/app/manifests/v1":
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Header().Set("Docker-Content-Digest", digest.FromBytes(manifest).String())
			w.Write(manifest)
		default:
			http.NotFound(w, r)
		}
	}))
	defer up.Close()
	lookaside := httptest.NewServer(http.NotFoundHandler()) // no signature: a denial
	defer lookaside.Close()

	dir := testsupport.ConfigDir(t)
	write := func(name, content string) {
		t.Helper()
		testsupport.WriteFile(t, filepath.Join(dir, name), content)
	}
	write("key.gpg", publicKey(t))
	write("policy.json", `{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"`+filepath.Join(dir, "key.gpg")+`"}]}`)
	write("registries.d/lookaside.yaml", "default-docker:\n  lookaside: "+lookaside.URL+"/sigs\n")
	write("config.yaml", "listen: 127.0.0.1:5000\nupstreams:\n  - registry: "+registry+"\n    url: "+up.URL+
		"\ndefaultUpstream: "+registry+"\npolicy:\n  path: ./policy.json\n  registriesDir: ./registries.d\n")
	cfg, _, err := config.Load(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var seen []string
	wrap := func(kind, name string, rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			mu.Lock()
			seen = append(seen, kind+" "+name+" "+r.URL.Host+r.URL.Path)
			mu.Unlock()
			return rt.RoundTrip(r)
		})
	}
	s, err := Build(context.Background(), cfg, slog.New(slog.DiscardHandler), Options{WrapTransport: wrap})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rec := httptest.NewRecorder()
	s.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v2/app/manifests/v1", nil))
	if rec.Code != http.StatusForbidden {
		t.Fatalf("pull answered %d, want 403 (no signature): %s", rec.Code, rec.Body)
	}

	upHost, laHost := strings.TrimPrefix(up.URL, "http://"), strings.TrimPrefix(lookaside.URL, "http://")
	for _, want := range []string{
		TransportUpstream + " " + registry + " " + upHost + "/v2/",
		TransportToken + " " + registry + " " + upHost + "/v2/auth",
		TransportUpstream + " " + registry + " " + upHost + "/v2/app/manifests/v1",
		TransportLookaside + "  " + laHost + "/sigs/app@sha256=" + digest.FromBytes(manifest).Encoded() + "/signature-1",
	} {
		if !slices.Contains(seen, want) {
			t.Errorf("no request %q went through WrapTransport; it saw %q", want, seen)
		}
	}
	for _, r := range seen {
		if strings.HasSuffix(r, "/v2/auth") != strings.HasPrefix(r, TransportToken+" ") {
			t.Errorf("request %q is under the wrong kind", r)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// publicKey is a fresh OpenPGP public key, binary (gpg --export).
func publicKey(t *testing.T) string {
	t.Helper()
	e, err := openpgp.NewEntity("test", "", "test@example.test", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := e.Serialize(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
