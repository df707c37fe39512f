package integration

// The shared set-up of the content-store tests (DESIGN.md "Content store (contract)"):
// the enforcement world (distribution's registry, real gpg keys, skopeo-written
// signatures in an http lookaside, a signedBy policy) plus pullgate binaries with a
// `content:` section, pulls with skopeo and crane through them, and counts of what the
// upstream received.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullgate/pullgate/integration/harness"
)

// contentWorld is an enforceWorld whose pullgates keep content.
type contentWorld struct {
	*enforceWorld
}

// newContentWorld starts the registry (with opts), the signing keys and the lookaside,
// and builds the binary.
func newContentWorld(t *testing.T, opts ...harness.RegistryOption) *contentWorld {
	t.Helper()
	w := &contentWorld{newEnforceWorldWith(t, opts...)}
	w.build(t.TempDir())(t)
	return w
}

// storeDir is a fresh folder for a filesystem store's rootdirectory (not created: the
// store makes it).
func storeDir(t *testing.T) string { return filepath.Join(t.TempDir(), "data") }

// pgOptions is how one pullgate of a content test is configured.
type pgOptions struct {
	content harness.ContentKeys
	// offline sets upstreams[].offline: true on the (reachable) registry.
	offline bool
	// policy replaces the world's policy file (a path).
	policy string
}

// config writes a configuration with the world's upstream, policy and registries.d and
// the content section.
func (w *contentWorld) config(t *testing.T, o pgOptions) string {
	t.Helper()
	policy := o.policy
	if policy == "" {
		policy = w.policy
	}
	return harness.WritePullgateConfig(t, harness.PullgateConfig{
		Upstreams:       []harness.Upstream{{Registry: upstreamName, URL: w.reg.URL, Offline: o.offline}},
		DefaultUpstream: upstreamName,
		Policy:          policy,
		RegistriesD:     w.sig.RegistriesD,
		Extra:           o.content.YAML(),
	})
}

// start runs pullgate with config (from config; the same file again restarts it on the
// same store).
func (w *contentWorld) start(t *testing.T, config string) *harness.Pullgate {
	t.Helper()
	return harness.StartPullgate(t, w.bin, config)
}

// signedOf pushes img as src/<repo>:v1 and copies it to <repo>:v1 with skopeo, signed by
// the trusted key for registry.test/<repo>:v1; it returns the digest of <repo>:v1.
func (w *contentWorld) signedOf(t *testing.T, repo string, img v1.Image) v1.Hash {
	t.Helper()
	w.reg.Push(t, "src/"+repo+":v1", img)
	w.copySigned(t, w.trusted, fullName(repo)+":v1", "src/"+repo+":v1", repo+":v1")
	return w.digest(t, repo+":v1")
}

// ref is the reference of repo (":v1" or "@sha256:...") through pullgate with prefix
// routing: <pullgate>/registry.test/<repo><suffix>.
func ref(pg *harness.Pullgate, repo, suffix string) string {
	return pg.Host + "/" + upstreamName + "/" + repo + suffix
}

// at is the reference suffix of digest d.
func at(d v1.Hash) string { return "@" + d.String() }

// skopeoPull copies ref (through pullgate) to an OCI layout with skopeo, which checks
// every digest, and fails the test unless the layout's manifest is want.
func skopeoPull(t *testing.T, ref string, want v1.Hash) {
	t.Helper()
	dir := t.TempDir()
	harness.Skopeo(t, "copy", "--remove-signatures", "--src-tls-verify=false", "docker://"+ref, "oci:"+dir+":pulled")
	checkLayout(t, "skopeo "+ref, dir, want)
}

// cranePull pulls ref with crane into an OCI layout (crane checks every digest) and
// fails the test unless the layout's manifest is want.
func cranePull(t *testing.T, ref string, want v1.Hash) {
	t.Helper()
	dir := t.TempDir()
	harness.Crane(t, "pull", "--format", "oci", ref, dir)
	checkLayout(t, "crane "+ref, dir, want)
}

func checkLayout(t *testing.T, what, dir string, want v1.Hash) {
	t.Helper()
	m := harness.LayoutManifests(t, dir)
	if len(m) != 1 || m[0].Digest != want {
		t.Fatalf("%s: the layout holds %v, want one manifest %s", what, m, want)
	}
}

// upstreamSince returns the registry requests after the first n, by kind.
func upstreamSince(w *contentWorld, n int) map[harness.RequestKind][]harness.Request {
	out := map[harness.RequestKind][]harness.Request{}
	for _, q := range w.reg.RequestsSince(n) {
		out[q.Kind()] = append(out[q.Kind()], q)
	}
	return out
}

// noUpstream fails the test if the registry received any request after the first n.
func noUpstream(t *testing.T, w *contentWorld, n int, what string) {
	t.Helper()
	if got := w.reg.RequestsSince(n); len(got) != 0 {
		t.Errorf("%s: the upstream received %d requests, want none: %v", what, len(got), got)
	}
}

// blobGETs counts the GETs of blob d (all blobs when d is zero) among reqs.
func blobGETs(reqs []harness.Request, d v1.Hash) int {
	n := 0
	for _, q := range reqs {
		if q.Method == http.MethodGet && q.Kind() == harness.BlobRequest && (d == v1.Hash{} || strings.HasSuffix(q.Path, "/"+d.String())) {
			n++
		}
	}
	return n
}

// boundedCallTimeout bounds a request that must not hang (an unreachable upstream, a
// store that cannot answer). It is a bound on the test, not a performance figure.
const boundedCallTimeout = 60 * time.Second

// callBounded is call with a deadline: a request still unanswered after
// boundedCallTimeout fails the test ("never a hang"). A transport error (the connection
// cut mid-body) is returned, not fatal.
func callBounded(t *testing.T, method, url string) (answer, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), boundedCallTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := http.DefaultClient.Do(req)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("%s %s: no answer within %s (a hang)", method, url, boundedCallTimeout)
	}
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("%s %s: body not finished within %s (a hang)", method, url, boundedCallTimeout)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, body: body}
	if err == nil && resp.ContentLength >= 0 && int64(len(body)) != resp.ContentLength {
		err = fmt.Errorf("body of %d bytes, Content-Length %d", len(body), resp.ContentLength)
	}
	return a, err
}

// neverWrong checks what a GET of content d answered: a complete 200 body must hash to
// d; an error status or a body cut short (err) is acceptable. It reports whether the
// right bytes were served.
func neverWrong(t *testing.T, what string, a answer, err error, d v1.Hash) bool {
	t.Helper()
	if err != nil {
		t.Logf("%s: cut short (acceptable, never served whole): %v", what, err)
		return false
	}
	if a.status != http.StatusOK {
		t.Logf("%s: status %d (acceptable): %s", what, a.status, a.body)
		return false
	}
	got, _, herr := v1.SHA256(strings.NewReader(string(a.body)))
	if herr != nil || got != d {
		t.Errorf("%s: a complete 200 body of %d bytes hashing to %s, want %s: WRONG BYTES SERVED", what, len(a.body), got, d)
		return false
	}
	return true
}

// unavailable checks a 502 or 503 answer with an OCI error body.
func (a answer) unavailable(t *testing.T, what string) {
	t.Helper()
	if a.status != http.StatusBadGateway && a.status != http.StatusServiceUnavailable {
		t.Errorf("%s: status %d, want 502 or 503; body %q", what, a.status, a.body)
		return
	}
	a.oneError(t)
}

// stale reports whether a decision line marks its answer as stale (attribute stale,
// true).
func stale(d map[string]any) bool {
	switch v := d["stale"].(type) {
	case bool:
		return v
	case string:
		return v == "true"
	}
	return false
}

// errorLines returns pullgate's ERROR-level log lines.
func errorLines(pg *harness.Pullgate) []map[string]any {
	var out []map[string]any
	for _, e := range pg.LogEntries("") {
		if e["level"] == "ERROR" {
			out = append(out, e)
		}
	}
	return out
}

// linesMentioning returns the log lines whose text contains word (case-insensitive).
func linesMentioning(pg *harness.Pullgate, word string) []string {
	var out []string
	for _, l := range strings.Split(pg.Logs.String(), "\n") {
		if strings.Contains(strings.ToLower(l), strings.ToLower(word)) {
			out = append(out, l)
		}
	}
	return out
}

// missing returns the digests of want that the filesystem store at root lacks.
func missing(t *testing.T, root string, want ...v1.Hash) []v1.Hash {
	t.Helper()
	have := harness.StoreBlobs(t, root)
	var out []v1.Hash
	for _, d := range want {
		if !have[d] {
			out = append(out, d)
		}
	}
	return out
}

// present returns the digests of want that the filesystem store at root holds.
func present(t *testing.T, root string, want ...v1.Hash) []v1.Hash {
	t.Helper()
	have := harness.StoreBlobs(t, root)
	return slices.DeleteFunc(slices.Clone(want), func(d v1.Hash) bool { return !have[d] })
}
