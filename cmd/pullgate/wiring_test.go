package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/internal/server"
	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/proxy/gatetest"
)

// TestWiringServesThroughProxy builds the upstream clients and the proxy handler exactly as
// serve does, from a configuration file, in front of a real (in-process) registry, with an
// allow-all test gate in place of the policy gate, and pulls an image through it.
func TestWiringServesThroughProxy(t *testing.T) {
	up := harness.StartRegistry(t)
	want := up.Push(t, "team/app:v1", harness.DockerImage(t, 2, 1024))

	// The registry name clients and signatures use differs from where it is reached.
	path := testsupport.WriteConfig(t, "upstreams:\n  - registry: upstream.test\n    url: "+up.URL.String()+"\ndefaultUpstream: upstream.test\npolicy:\n  path: policy.json\n")
	cfg, _, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	built, err := server.Build(context.Background(), cfg, logger, server.Options{NewGate: allowAll})
	if err != nil {
		t.Fatal(err)
	}
	proxySrv := httptest.NewServer(built.Handler)
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
		if d := harness.ReadImage(t, got).Manifest; d != want {
			t.Errorf("pull %s: digest %v, want %v", image, d, want)
		}
	}
}

// allowAll is the test gates: every request is admitted.
func allowAll(context.Context, *config.Config, []server.Upstream, *slog.Logger) (*server.Gates, error) {
	return &server.Gates{Gate: gatetest.AllowAll{}}, nil
}

func TestNewUpstreamsReportsTheEntry(t *testing.T) {
	path := testsupport.WriteConfig(t, testsupport.GoodConfig)
	dir := filepath.Dir(path)
	testsupport.WriteFile(t, filepath.Join(dir, "ca.pem"), []byte("not a certificate"))
	t.Setenv("PULLGATE_UPSTREAMS_1_CAFILE", "ca.pem")
	t.Setenv("PULLGATE_UPSTREAMS_1_URL", "https://127.0.0.1:5001")
	cfg, _, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = server.NewUpstreams(cfg, slog.New(slog.DiscardHandler), "")
	if err == nil || !strings.HasPrefix(err.Error(), "upstreams[1]: ") {
		t.Errorf("newUpstreams = %v, want an error about upstreams[1]", err)
	}
}

// TestServeLifecycle runs the whole serve command in-process with an explicit allow-all
// test gate: it loads the file, listens, serves a pull through the proxy, and stops cleanly
// when its context ends (what SIGINT/SIGTERM do).
func TestServeLifecycle(t *testing.T) {
	up := harness.StartRegistry(t)
	want := up.Push(t, "lib/app:v1", harness.DockerImage(t, 1, 512))
	path := testsupport.WriteConfig(t, "listen: 127.0.0.1:0\nupstreams:\n  - registry: upstream.test\n    url: "+up.URL.String()+"\npolicy:\n  path: policy.json\nlog:\n  format: json\n")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs, logw := io.Pipe()
	exit := make(chan int, 1)
	go func() {
		exit <- runServe(ctx, []string{"--config", path}, logw, allowAll, nil)
		logw.Close()
	}()
	addr := make(chan string, 1)
	var seen strings.Builder
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			seen.WriteString(sc.Text() + "\n")
			var entry struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &entry) == nil && entry.Msg == "pullgate listening" {
				addr <- entry.Addr
			}
		}
	}()
	var proxyAddr string
	select {
	case proxyAddr = <-addr:
	case code := <-exit:
		<-scanDone
		t.Fatalf("serve exited with %d before listening:\n%s", code, seen.String())
	}

	pullRef, err := name.ParseReference(proxyAddr+"/upstream.test/lib/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(pullRef)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := got.Digest(); err != nil || d != want {
		t.Errorf("digest through the proxy %v (%v), want %v", d, err, want)
	}

	cancel()
	if code := <-exit; code != exitOK {
		t.Errorf("serve exit code after shutdown = %d, want 0", code)
	}
	<-scanDone
	for _, msg := range []string{`"msg":"pullgate listening"`, `"msg":"shutting down"`, `"msg":"pullgate stopped"`} {
		if !strings.Contains(seen.String(), msg) {
			t.Errorf("logs lack %s:\n%s", msg, seen.String())
		}
	}
}

// TestRealGateEnforcesAndReloads builds the handler exactly as serve does, with the real
// policy gate, in front of an in-process registry: a reject policy answers 403 DENIED for
// the manifest and its blobs, a reload to an accepting policy lets the pull through, a
// reload to a broken policy is refused and leaves the last one in force, and the signature
// API is advertised and answers.
func TestRealGateEnforcesAndReloads(t *testing.T) {
	up := harness.StartRegistry(t)
	img := harness.DockerImage(t, 1, 256)
	up.Push(t, "team/app:v1", img)
	layers, _ := img.Layers()
	layerDigest, _ := layers[0].Digest()

	path := testsupport.WriteConfig(t, "upstreams:\n  - registry: upstream.test\n    url: "+up.URL.String()+"\npolicy:\n  path: policy.json\n")
	policyFile := filepath.Join(filepath.Dir(path), "policy.json") // testDir's: reject everything
	cfg, _, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	built, err := server.Build(context.Background(), cfg, logger, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reload := built.Reload
	srv := httptest.NewServer(built.Handler)
	t.Cleanup(srv.Close)
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if path == "/v2/" && resp.Header.Get("X-Registry-Supports-Signatures") != "1" {
			t.Errorf("/v2/ does not advertise the signature API")
		}
		return resp.StatusCode, string(body)
	}
	manifest := "/v2/upstream.test/team/app/manifests/v1"
	blob := "/v2/upstream.test/team/app/blobs/" + layerDigest.String()

	if code, _ := get("/v2/"); code != http.StatusOK {
		t.Fatalf("/v2/: %d", code)
	}
	if code, body := get(manifest); code != http.StatusForbidden || !strings.Contains(body, `"DENIED"`) ||
		!strings.Contains(body, "upstream.test/team/app:v1") || !strings.Contains(body, "reject") {
		t.Fatalf("manifest under a reject policy: %d %s", code, body)
	}
	if code, _ := get(blob); code != http.StatusForbidden {
		t.Fatalf("blob of a denied image: %d", code)
	}

	testsupport.WriteFile(t, policyFile, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`))
	// Reading is not putting in force: serve drops a reload that ended after its deadline.
	commit, err := reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := get(manifest); code != http.StatusForbidden {
		t.Fatalf("manifest after a reload read but not committed: %d, want 403", code)
	}
	commit()
	if code, body := get(manifest); code != http.StatusOK {
		t.Fatalf("manifest after reload: %d %s", code, body)
	}
	if code, _ := get(blob); code != http.StatusOK {
		t.Fatalf("blob of an accepted image: %d", code)
	}
	d, _ := img.Digest()
	if code, body := get("/extensions/v2/upstream.test/team/app/signatures/" + d.String()); code != http.StatusOK || body != `{"signatures":[]}` {
		t.Fatalf("signature API: %d %s", code, body)
	}

	testsupport.WriteFile(t, policyFile, []byte(`{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/nonexistent.gpg"}]}`))
	if _, err := reload(context.Background()); err == nil || !strings.Contains(err.Error(), "/nonexistent.gpg") {
		t.Fatalf("reload of a policy with a missing key file = %v", err)
	}
	if code, _ := get(manifest); code != http.StatusOK {
		t.Fatalf("the previous policy did not stay in force: %d", code)
	}
}
