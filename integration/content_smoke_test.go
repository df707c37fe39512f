package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pullgate/pullgate/integration/harness"
)

// downSwitch makes a registry unreachable on demand: its connections are cut without an
// answer, as a stopped server's would be refused.
type downSwitch struct{ down atomic.Bool }

func (s *downSwitch) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.down.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		next.ServeHTTP(w, r)
	})
}

// A warm pull through the built binary with a filesystem store asks the upstream
// nothing, and keeps working when the upstream is cut off.
func TestContentStoreWarmPullAndUpstreamDown(t *testing.T) {
	sw := &downSwitch{}
	reg := harness.StartRegistry(t, harness.WithMiddleware(sw.middleware))
	img := harness.OCIImage(t, 2, 4096, v1.Platform{OS: "linux", Architecture: "amd64"})
	ref := reg.Ref(t, "smoke/app:v1")
	if err := remote.Write(ref, img, remote.WithAuth(reg.Auth())); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	policyPath := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(policyPath, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := harness.BuildPullgate(t, t.TempDir())
	cfg := harness.WritePullgateConfig(t, harness.PullgateConfig{
		Upstreams: []harness.Upstream{{Registry: reg.Host, URL: reg.URL}}, DefaultUpstream: reg.Host, Policy: policyPath,
		Extra: "content:\n  storage:\n    filesystem:\n      rootdirectory: " + filepath.Join(dir, "data") + "\n  tagTTL: 0s\n",
	})
	pg := harness.StartPullgate(t, bin, cfg)
	through := harness.ParseRef(t, pg.Host+"/smoke/app:v1")

	first := harness.PullImage(t, through.String())
	reg.ResetRequests()
	second := harness.PullImage(t, through.String())
	if second.Manifest != first.Manifest {
		t.Fatalf("digests differ: %s, %s", first.Manifest, second.Manifest)
	}
	// tagTTL 0: the tag is confirmed with one HEAD; nothing else reaches the upstream.
	for _, r := range reg.Requests() {
		if r.Method != http.MethodHead || !strings.Contains(r.Path, "/manifests/v1") {
			t.Errorf("warm pull reached the upstream: %s %s", r.Method, r.Path)
		}
	}

	sw.down.Store(true)
	third := harness.PullImage(t, pg.Host+"/smoke/app@"+first.Manifest.String())
	if third.Manifest != first.Manifest {
		t.Fatalf("offline pull by digest: %s", third.Manifest)
	}
	harness.PullImage(t, through.String())
	stale := 0
	for _, d := range pg.LogEntries("decision") {
		if d["stale"] == true && d["reference"] == "v1" {
			stale++
		}
	}
	if stale == 0 {
		t.Errorf("no decision line says the tag was resolved stale:\n%s", pg.Logs)
	}
}
