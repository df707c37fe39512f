package integration

// Serving with the upstream gone (Content store contract 2, 3, 4, 10; upstreams[].offline):
// stale tags within maxStale, marked in the decision line; maxStale 0; never-seen images
// fail fast; with the lookaside gone too, verdicts come from the kept signatures, under
// the policy in force; an offline upstream is never contacted.

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/testsupport"
)

// TestContentUpstreamDown: the registry is closed (connections refused) after pulls
// through two pullgates that always ask for tags (tagTTL 0), one allowing stale tags
// (maxStale default, 168h) and one not (maxStale 0).
func TestContentUpstreamDown(t *testing.T) {
	t.Parallel()
	w := newContentWorld(t)
	img := harness.ImageOf(t, harness.RandomLayer(t, 64<<10))
	d := w.signedOf(t, "stale/app", img)
	never := w.signedOf(t, "never/app", harness.ImageOf(t, harness.RandomLayer(t, 4096)))
	w.image(t, "rejected/app")

	staleOK := w.start(t, w.config(t, pgOptions{content: harness.ContentKeys{Root: storeDir(t), TagTTL: "0s"}}))
	noStale := w.start(t, w.config(t, pgOptions{content: harness.ContentKeys{Root: storeDir(t), TagTTL: "0s", MaxStale: "0s"}}))
	for _, pg := range []*harness.Pullgate{staleOK, noStale} {
		skopeoPull(t, ref(pg, "stale/app", ":v1"), d)
	}
	w.reg.Stop()

	base := func(pg *harness.Pullgate, repo string) string {
		return "http://" + pg.Host + "/v2/" + upstreamName + "/" + repo
	}
	t.Run("by digest from the store", func(t *testing.T) {
		for name, pg := range map[string]*harness.Pullgate{"maxStale 168h": staleOK, "maxStale 0": noStale} {
			a, err := callBounded(t, http.MethodGet, base(pg, "stale/app")+"/manifests/"+d.String())
			if err != nil {
				t.Fatalf("%s: manifest by digest: %v", name, err)
			}
			a.served(t, name+": manifest by digest", d)
			for _, b := range harness.ImageBlobs(t, img) {
				a, err := callBounded(t, http.MethodGet, base(pg, "stale/app")+"/blobs/"+b.String())
				if err != nil {
					t.Fatalf("%s: blob %s: %v", name, b, err)
				}
				a.served(t, name+": blob "+b.String(), b)
			}
			skopeoPull(t, ref(pg, "stale/app", at(d)), d)
		}
	})

	t.Run("by tag within maxStale, marked stale", func(t *testing.T) {
		before := len(decisions(staleOK, "stale/app", "manifest"))
		skopeoPull(t, ref(staleOK, "stale/app", ":v1"), d)
		cranePull(t, ref(staleOK, "stale/app", ":v1"), d)
		// Each pull asks for the tag once at least; the lines arrive through a pipe.
		var tagLines []map[string]any
		for deadline := time.Now().Add(10 * time.Second); len(tagLines) < 2 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			tagLines = nil
			for _, e := range decisions(staleOK, "stale/app", "manifest")[before:] {
				if e["reference"] == "v1" {
					tagLines = append(tagLines, e)
				}
			}
		}
		if len(tagLines) == 0 {
			t.Fatalf("no decision line for stale/app:v1 after the upstream went away")
		}
		for _, e := range tagLines {
			if !stale(e) || e["verdict"] != "accept" {
				t.Errorf("decision line for a tag served with the upstream down is not marked stale: %v", e)
			}
		}
	})

	t.Run("maxStale 0 fails the tag", func(t *testing.T) {
		a, err := callBounded(t, http.MethodGet, base(noStale, "stale/app")+"/manifests/v1")
		if err != nil {
			t.Fatal(err)
		}
		a.unavailable(t, "stale/app:v1 with maxStale 0")
	})

	t.Run("never seen fails fast", func(t *testing.T) {
		for _, path := range []string{"/manifests/v1", "/manifests/" + never.String()} {
			a, err := callBounded(t, http.MethodGet, base(staleOK, "never/app")+path)
			if err != nil {
				t.Fatal(err)
			}
			a.unavailable(t, "never/app"+path)
		}
	})

	t.Run("a reject scope is 403, never 5xx", func(t *testing.T) {
		a, err := callBounded(t, http.MethodGet, base(staleOK, "rejected/app")+"/manifests/v1")
		if err != nil {
			t.Fatal(err)
		}
		a.denied(t, "rejected/app:v1 with the upstream down")
	})
}

// TestContentUpstreamAndLookasideDown: pulls through one pullgate, then the registry and
// the lookaside are closed and pullgate is restarted on the same store (so that no
// verdict survives in memory): warm images still pull with skopeo and crane, the
// verdicts re-derived from the kept signatures; rejected images stay refused; a reload
// to a stricter policy applies to kept content at once.
func TestContentUpstreamAndLookasideDown(t *testing.T) {
	t.Parallel()
	w := newContentWorld(t)
	kept := w.signedOf(t, "kept/app", harness.ImageOf(t, harness.RandomLayer(t, 64<<10), harness.RandomLayer(t, 8<<10)))
	hup := w.signedOf(t, "hup/app", harness.ImageOf(t, harness.RandomLayer(t, 16<<10)))
	unsigned := w.image(t, "unsigned/app")
	w.image(t, "rejected/app")

	policy := filepath.Join(t.TempDir(), "policy.json")
	testsupport.WriteFile(t, policy, w.policyJSON())
	config := w.config(t, pgOptions{policy: policy, content: harness.ContentKeys{Root: storeDir(t), TagTTL: "0s"}})
	pg := w.start(t, config)
	skopeoPull(t, ref(pg, "kept/app", ":v1"), kept)
	cranePull(t, ref(pg, "hup/app", ":v1"), hup)
	base := "http://" + pg.Host + "/v2/" + upstreamName + "/"
	call(t, http.MethodGet, base+"unsigned/app/manifests/v1").denied(t, "unsigned/app online")
	call(t, http.MethodGet, base+"rejected/app/manifests/v1").denied(t, "rejected/app online")
	pg.Stop(t)

	w.reg.Stop()
	w.sig.Lookaside.Stop()
	pg = w.start(t, config)
	base = "http://" + pg.Host + "/v2/" + upstreamName + "/"

	t.Run("warm images pull", func(t *testing.T) {
		skopeoPull(t, ref(pg, "kept/app", ":v1"), kept)
		skopeoPull(t, ref(pg, "kept/app", at(kept)), kept)
		cranePull(t, ref(pg, "kept/app", ":v1"), kept)
		cranePull(t, ref(pg, "hup/app", at(hup)), hup)
	})

	t.Run("rejected stays refused", func(t *testing.T) {
		a, err := callBounded(t, http.MethodGet, base+"rejected/app/manifests/v1")
		if err != nil {
			t.Fatal(err)
		}
		a.denied(t, "rejected/app (reject scope) offline")
		for _, path := range []string{"unsigned/app/manifests/v1", "unsigned/app/manifests/" + unsigned.String()} {
			a, err := callBounded(t, http.MethodGet, base+path)
			if err != nil {
				t.Fatal(err)
			}
			// Never kept (it was refused), so offline pullgate cannot know its bytes:
			// 403 or an unavailable answer, never the image.
			t.Logf("%s offline: %d %s", path, a.status, a.body)
			switch a.status {
			case http.StatusForbidden:
				a.denied(t, path)
			default:
				a.unavailable(t, path+" (refused online, never kept)")
			}
		}
	})

	t.Run("a stricter policy applies offline", func(t *testing.T) {
		// The upstream now requires the untrusted key: no kept signature satisfies it.
		stricter := fmt.Sprintf(`{"default": [{"type": "reject"}], "transports": {"docker": {%q: [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": %q}]}}}`,
			upstreamName, w.untrusted.PublicKeyFile)
		testsupport.WriteFile(t, policy, stricter)
		reloads := len(pg.LogEntries("policy reloaded"))
		pg.Signal(t, syscall.SIGHUP)
		pg.WaitLog(t, "policy reloaded", reloads)
		for _, path := range []string{"kept/app/manifests/v1", "kept/app/manifests/" + kept.String(),
			"hup/app/manifests/v1", "hup/app/manifests/" + hup.String()} {
			a, err := callBounded(t, http.MethodGet, base+path)
			if err != nil {
				t.Fatal(err)
			}
			a.denied(t, path+" offline under a policy no kept signature satisfies")
		}
		harness.SkopeoFails(t, "copy", "--remove-signatures", "--src-tls-verify=false", "docker://"+ref(pg, "kept/app", ":v1"), "oci:"+t.TempDir()+":x")

		// Back to the policy the kept signatures satisfy: served again, offline.
		testsupport.WriteFile(t, policy, w.policyJSON())
		pg.Signal(t, syscall.SIGHUP)
		pg.WaitLog(t, "policy reloaded", reloads+1)
		skopeoPull(t, ref(pg, "kept/app", ":v1"), kept)
	})
}

// TestContentOfflineUpstream: a second pullgate on the same store with offline: true
// serves what the first kept, and is restarted while offline. Its upstream's url is the
// live registry, so that any contact would be counted: it must receive nothing.
func TestContentOfflineUpstream(t *testing.T) {
	t.Parallel()
	w := newContentWorld(t)
	img := harness.ImageOf(t, harness.RandomLayer(t, 64<<10), harness.RandomLayer(t, 8<<10))
	d := w.signedOf(t, "air/app", img)
	w.signedOf(t, "air/never", harness.ImageOf(t, harness.RandomLayer(t, 4096)))
	root := storeDir(t)

	online := w.start(t, w.config(t, pgOptions{content: harness.ContentKeys{Root: root}}))
	skopeoPull(t, ref(online, "air/app", ":v1"), d)
	online.Stop(t)

	config := w.config(t, pgOptions{offline: true, content: harness.ContentKeys{Root: root, TagTTL: "0s"}})
	n := len(w.reg.Requests())
	for i := range 2 { // the second start is the restart while offline
		t.Run(fmt.Sprintf("start %d", i+1), func(t *testing.T) {
			pg := w.start(t, config)
			skopeoPull(t, ref(pg, "air/app", ":v1"), d)
			cranePull(t, ref(pg, "air/app", ":v1"), d)
			cranePull(t, ref(pg, "air/app", at(d)), d)
			base := "http://" + pg.Host + "/v2/" + upstreamName + "/"
			for _, b := range harness.ImageBlobs(t, img) {
				a, err := callBounded(t, http.MethodGet, base+"air/app/blobs/"+b.String())
				if err != nil {
					t.Fatal(err)
				}
				a.served(t, "blob "+b.String(), b)
			}
			// Never kept: an answer, not a hang and not the image: 404 MANIFEST_UNKNOWN
			// saying why, by tag and by digest.
			for _, r := range []string{"v1", digest.FromString("never kept").String()} {
				a, err := callBounded(t, http.MethodGet, base+"air/never/manifests/"+r)
				if err != nil {
					t.Fatal(err)
				}
				if a.status != http.StatusNotFound {
					t.Errorf("air/never %s, never kept, from an offline upstream: %d %s, want 404", r, a.status, a.body)
				} else if e := a.oneError(t); e.Code != "MANIFEST_UNKNOWN" || !strings.Contains(e.Message, "not kept in the content store") {
					t.Errorf("air/never %s: error %+v, want MANIFEST_UNKNOWN saying it is not kept", r, e)
				}
			}
			pg.Stop(t)
		})
	}
	noUpstream(t, w, n, "pulls through an offline upstream")
}

// digestsOf is d and the blobs of img.
func digestsOf(t *testing.T, d v1.Hash, img v1.Image) []v1.Hash {
	return append([]v1.Hash{d}, harness.ImageBlobs(t, img)...)
}
