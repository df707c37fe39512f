package main

import (
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pullgate/pullgate/proxy/gatetest"
)

// TestWiringServesThroughProxy builds the upstream clients and the proxy handler exactly as
// serve does, from a configuration file, in front of a real (in-process) registry, with an
// allow-all test gate in place of the policy gate, and pulls an image through it.
func TestWiringServesThroughProxy(t *testing.T) {
	upstreamSrv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(upstreamSrv.Close)
	host := strings.TrimPrefix(upstreamSrv.URL, "http://")

	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host+"/team/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}

	// The registry name clients and signatures use differs from where it is reached.
	path := writeConfig(t, "upstreams:\n  - registry: upstream.test\n    url: "+upstreamSrv.URL+"\ndefaultUpstream: upstream.test\npolicy:\n  path: policy.json\n")
	cfg, _, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	ups, err := newUpstreams(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newGate(context.Background(), cfg, ups, logger); !errors.Is(err, errGateNotWired) {
		t.Fatalf("newGate = %v, want errGateNotWired until the policy engine is wired in", err)
	}
	h, err := newProxyHandler(cfg, ups, gatetest.AllowAll{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	proxySrv := httptest.NewServer(h)
	t.Cleanup(proxySrv.Close)
	proxyHost := strings.TrimPrefix(proxySrv.URL, "http://")

	resp, err := http.Get(proxySrv.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Errorf("GET /v2/: %s, API version %q", resp.Status, resp.Header.Get("Docker-Distribution-API-Version"))
	}

	// Registry-prefixed path, and the default upstream.
	for _, image := range []string{proxyHost + "/upstream.test/team/app:v1", proxyHost + "/team/app:v1"} {
		pref, err := name.ParseReference(image, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		got, err := remote.Image(pref)
		if err != nil {
			t.Fatalf("pull %s: %v", image, err)
		}
		if d, err := got.Digest(); err != nil || d != want {
			t.Errorf("pull %s: digest %v (%v), want %v", image, d, err, want)
		}
		layers, err := got.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatalf("pull %s: layer: %v", image, err)
			}
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
			if err != nil {
				t.Fatalf("pull %s: layer body: %v", image, err)
			}
		}
	}
}

func TestNewUpstreamsReportsTheEntry(t *testing.T) {
	path := writeConfig(t, goodConfig)
	dir := filepath.Dir(path)
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PULLGATE_UPSTREAMS_1_CAFILE", "ca.pem")
	t.Setenv("PULLGATE_UPSTREAMS_1_URL", "https://127.0.0.1:5001")
	cfg, _, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = newUpstreams(cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.HasPrefix(err.Error(), "upstreams[1]: ") {
		t.Errorf("newUpstreams = %v, want an error about upstreams[1]", err)
	}
}
