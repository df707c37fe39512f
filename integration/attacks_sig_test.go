package integration

// Attacks on signature discovery through the built binary (issues 8.3, 15.2, 15.3): a
// lookaside that redirects to an internal server, one whose URL carries credentials, and
// an upstream that attaches many big bundles to make one lookup read without end.

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
)

// sigAttackBudget is sigsource's maxSignatureBytesPerImage: what one lookup may read.
const sigAttackBudget = 8 << 20

// sigAttackPullgate starts pullgate in front of reg (its default upstream) with a policy
// that requires a simple signature by trusted for everything, registries.d holding the
// one file regd, and extra appended to its configuration.
func sigAttackPullgate(t *testing.T, reg *harness.Registry, trusted *pgptest.Key, regd, extra string) *harness.Pullgate {
	t.Helper()
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "trusted.gpg")
	testsupport.WriteFile(t, keyPath, trusted.ArmoredPublic(t))
	pol := testsupport.JSON(t, map[string]any{"default": []any{map[string]any{"type": "signedBy", "keyType": "GPGKeys", "keyPath": keyPath}}})
	policyPath := filepath.Join(dir, "policy.json")
	regdDir := filepath.Join(dir, "registries.d")
	testsupport.WriteFile(t, policyPath, pol)
	if err := os.Mkdir(regdDir, 0o700); err != nil {
		t.Fatal(err)
	}
	testsupport.WriteFile(t, filepath.Join(regdDir, "attack.yaml"), regd)
	config := harness.WritePullgateConfig(t, harness.PullgateConfig{
		Upstreams:       []harness.Upstream{{Registry: reg.Host, URL: reg.URL}},
		DefaultUpstream: reg.Host, Policy: policyPath, RegistriesD: regdDir, Extra: extra,
	})
	return harness.StartPullgate(t, harness.BuildPullgate(t, t.TempDir()), config)
}

// TestAttackSigLookasideRedirect: a lookaside that 302-redirects signature-1 to an
// internal server on another loopback port (serving a body that starts like an OpenPGP
// packet) never gets that server asked, and neither the pull nor pullgate's signature API
// serve anything: both are 503.
func TestAttackSigLookasideRedirect(t *testing.T) {
	const secret = "INTERNAL-METADATA-SECRET"
	var internalHits atomic.Int64
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		internalHits.Add(1)
		w.Write(append([]byte{0x88}, secret...))
	}))
	t.Cleanup(internal.Close)
	lookaside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/signature-1") {
			http.Redirect(w, r, internal.URL+"/latest/meta-data/iam", http.StatusFound)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(lookaside.Close)
	reg := harness.StartRegistry(t)
	d := reg.Push(t, "attack/redirect:v1", harness.OCIImage(t, 1, 256, harness.LinuxAMD64))
	pg := sigAttackPullgate(t, reg, pgptest.NewKey(t, "trusted", pgptest.KeyOptions{}),
		"default-docker:\n  lookaside: "+lookaside.URL+"\n", "")
	base := "http://" + pg.Host

	m := call(t, http.MethodGet, base+"/v2/attack/redirect/manifests/v1")
	if m.status != http.StatusServiceUnavailable {
		t.Errorf("manifest: %d %q, want 503", m.status, m.body)
	}
	s := call(t, http.MethodGet, base+"/extensions/v2/attack/redirect/signatures/"+d.String())
	if s.status != http.StatusServiceUnavailable {
		t.Errorf("signature API: %d %q, want 503", s.status, s.body)
	}
	for _, a := range []answer{m, s} {
		if bytes.Contains(a.body, []byte(secret)) || bytes.Contains(a.body, []byte(base64.StdEncoding.EncodeToString(append([]byte{0x88}, secret...)))) {
			t.Errorf("the internal server's body reached the client: %q", a.body)
		}
	}
	if n := internalHits.Load(); n != 0 {
		t.Errorf("the internal server was asked %d times", n)
	}
}

// TestAttackSigLookasideHangs: a lookaside that accepts connections and never answers
// holds a pull no longer than upstreamTimeouts.lookaside (1s here): the manifest and
// pullgate's signature API are 503, the decision line says the lookaside timed out, and
// nothing is served. The client gives up after 10s, so the default 15s would fail it.
func TestAttackSigLookasideHangs(t *testing.T) {
	reg := harness.StartRegistry(t)
	d := reg.Push(t, "attack/hang:v1", harness.OCIImage(t, 1, 256, harness.LinuxAMD64))
	pg := sigAttackPullgate(t, reg, pgptest.NewKey(t, "trusted", pgptest.KeyOptions{}),
		"default-docker:\n  lookaside: http://"+testsupport.HangingAddr(t)+"\n", "upstreamTimeouts:\n  lookaside: 1s\n")
	base := "http://" + pg.Host
	client := &http.Client{Timeout: 10 * time.Second}

	m := callWith(t, client, http.MethodGet, base+"/v2/attack/hang/manifests/v1", nil)
	if m.status != http.StatusServiceUnavailable || m.header.Get("Docker-Content-Digest") != "" {
		t.Errorf("manifest: %d %q, want 503 without content", m.status, m.body)
	}
	s := callWith(t, client, http.MethodGet, base+"/extensions/v2/attack/hang/signatures/"+d.String(), nil)
	if s.status != http.StatusServiceUnavailable {
		t.Errorf("signature API: %d %q, want 503", s.status, s.body)
	}
	// The log is read as pullgate writes it: the line may follow the answer.
	if e := pg.WaitLog(t, "decision", 0); e["verdict"] != "error" || !strings.Contains(fmt.Sprint(e["reason"]), "no answer within 1s (upstreamTimeouts.lookaside)") {
		t.Errorf("decision line %v, want verdict error saying the lookaside timed out", e)
	}
}

// TestAttackSigCredentialsInMessages: a lookaside URL with user:password and a token in
// its query: the 403 every client gets names the lookaside as scheme://host/path only.
func TestAttackSigCredentialsInMessages(t *testing.T) {
	reg := harness.StartRegistry(t)
	d := reg.Push(t, "attack/cred:v1", harness.OCIImage(t, 1, 256, harness.LinuxAMD64))
	untrusted := pgptest.NewKey(t, "untrusted", pgptest.KeyOptions{})
	sig := pgptest.SimpleSignature(t, untrusted, d.String(), reg.Host+"/attack/cred:v1")
	sigPath := "/base/attack/cred@sha256=" + d.Hex + "/signature-1"
	var queries sync.Map
	lookaside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries.Store(r.URL.RawQuery, true)
		if r.URL.Path == sigPath {
			w.Write(sig)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(lookaside.Close)
	withCreds := strings.Replace(lookaside.URL, "http://", "http://alice:hunter2@", 1) + "/base?token=secret"
	pg := sigAttackPullgate(t, reg, pgptest.NewKey(t, "trusted", pgptest.KeyOptions{}),
		"default-docker:\n  lookaside: "+withCreds+"\n", "")

	a := call(t, http.MethodGet, "http://"+pg.Host+"/v2/attack/cred/manifests/v1")
	e := a.denied(t, "an image signed by an untrusted key")
	for _, leak := range []string{"token=secret", "secret", "alice", "hunter2", "xxxxx"} {
		if strings.Contains(string(a.body), leak) {
			t.Errorf("the 403 contains %q: %s", leak, a.body)
		}
	}
	if want := "lookaside " + lookaside.URL + sigPath; !strings.Contains(e.Message, want) {
		t.Errorf("the 403 does not name the signature as %q: %s", want, e.Message)
	}
	if _, ok := queries.Load("token=secret"); !ok {
		t.Error("the lookaside was not asked with its query (it must still be sent)")
	}
}

// sigAttackBundles attaches n referrers to repo@subject, each a Sigstore bundle artifact
// whose one layer is the same bundle-typed blob of size bytes (stored once, fetched once
// per referrer), listed by the referrers tag (the harness registry has no referrers API).
func sigAttackBundles(t *testing.T, reg *harness.Registry, repo string, subject v1.Hash, subjectSize int64, n, size int) {
	t.Helper()
	const bundleType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	head := `{"mediaType":"` + bundleType + `","pad":"`
	blob := []byte(head + strings.Repeat("A", size-len(head)-2) + `"}`)
	blobDigest := reg.PutBlob(t, repo, blob).String()
	emptyDigest := reg.PutBlob(t, repo, []byte("{}")).String()
	var descs []string
	for i := range n {
		m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":%q,`+
			`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2},`+
			`"layers":[{"mediaType":%q,"digest":%q,"size":%d}],`+
			`"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d},`+
			`"annotations":{"n":"%d"}}`, bundleType, emptyDigest, bundleType, blobDigest, len(blob), subject.String(), subjectSize, i)
		d := reg.PutManifest(t, repo, digest.FromString(m).String(), "application/vnd.oci.image.manifest.v1+json", []byte(m)).String()
		descs = append(descs, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"artifactType":%q}`,
			d, len(m), bundleType))
	}
	idx := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` + strings.Join(descs, ",") + `]}`
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut,
		reg.URL.String()+"/v2/"+repo+"/manifests/sha256-"+subject.Hex, strings.NewReader(idx))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/vnd.oci.image.index.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("referrers tag: status %d", resp.StatusCode)
	}
}

// TestAttackSigBudget: an upstream attaches 32 bundles of 3 MiB to each of four images;
// four parallel requests to pullgate's signature API (four distinct lookups) each stop
// at the 8 MiB budget, answer 503, and the upstream serves at most the budget per lookup.
// The peak RSS of pullgate is logged (a measurement, not asserted).
func TestAttackSigBudget(t *testing.T) {
	const (
		images     = 4
		referrers  = 32
		bundleSize = 3 << 20
	)
	var served [images]atomic.Int64
	count := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for i := range images {
				if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, fmt.Sprintf("/v2/attack/budget%d/blobs/", i)) {
					w = testsupport.CountingWriter{ResponseWriter: w, N: &served[i]}
				}
			}
			next.ServeHTTP(w, r)
		})
	}
	reg := harness.StartRegistry(t, harness.WithMiddleware(count))
	digests := make([]v1.Hash, images)
	for i := range images {
		img := harness.OCIImage(t, 1, 256, harness.LinuxAMD64)
		repo := fmt.Sprintf("attack/budget%d", i)
		digests[i] = reg.Push(t, repo+":v1", img)
		size, err := img.Size()
		if err != nil {
			t.Fatal(err)
		}
		sigAttackBundles(t, reg, repo, digests[i], size, referrers, bundleSize)
	}
	pg := sigAttackPullgate(t, reg, pgptest.NewKey(t, "trusted", pgptest.KeyOptions{}),
		"docker:\n  \""+reg.Host+"\":\n    use-sigstore-attachments: true\n", "")
	before := pg.VmHWM(t)

	var wg sync.WaitGroup
	answers := make([]answer, images)
	for i := range images {
		wg.Go(func() {
			answers[i] = call(t, http.MethodGet, fmt.Sprintf("http://%s/extensions/v2/attack/budget%d/signatures/%s", pg.Host, i, digests[i]))
		})
	}
	wg.Wait()
	after := pg.VmHWM(t)
	t.Logf("pullgate VmHWM: %d MiB before the attack, %d MiB after four parallel lookups of %d bundles of %d MiB",
		before>>20, after>>20, referrers, bundleSize>>20)
	for i, a := range answers {
		if a.status != http.StatusServiceUnavailable {
			t.Errorf("image %d: signature API answered %d, want 503", i, a.status)
		}
		if n := served[i].Load(); n > sigAttackBudget {
			t.Errorf("image %d: the upstream served %d MiB of blobs for one lookup, more than the %d MiB budget", i, n>>20, sigAttackBudget>>20)
		}
	}

	// The pull of such an image is undecidable too, never a partial verdict.
	for i := range images {
		served[i].Store(0)
	}
	if a := call(t, http.MethodGet, "http://"+pg.Host+"/v2/attack/budget0/manifests/v1"); a.status != http.StatusServiceUnavailable {
		t.Errorf("manifest: %d %q, want 503", a.status, a.body)
	}
	if n := served[0].Load(); n > sigAttackBudget {
		t.Errorf("manifest: the upstream served %d MiB of blobs, more than the budget", n>>20)
	}
}
