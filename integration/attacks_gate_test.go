package integration

// Attacks on the gate's memory, through the pullgate binary (issue 8, items 2, 4 and 5):
// content disguised as a signature artifact, the parent-index memory shared between
// clients, and the blob admissions flushed by another repository's traffic.

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/testsupport"
)

// victimIP and attackerIP are two loopback source addresses: pullgate tells its clients
// apart by IP address (Linux accepts all of 127/8 on lo).
const (
	victimIP   = "127.0.0.1"
	attackerIP = "127.0.0.2"
)

// clientFrom is an HTTP client whose connections come from ip.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// callFrom is call from source address ip.
func callFrom(t *testing.T, ip, method, url string) answer {
	t.Helper()
	return callWith(t, clientFrom(ip), method, url, nil)
}

// manifestOf reads the manifest of repoRef from the registry.
func manifestOf(t *testing.T, reg *harness.Registry, repoRef string) *v1.Manifest {
	t.Helper()
	img, err := remote.Image(reg.Ref(t, repoRef))
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const simpleSigningType = "application/vnd.dev.cosign.simplesigning.v1+json"

// TestAttackGateDisguisedArtifact (issue 8.2): a runnable image whose layer claims to be a
// cosign signature is an image like any other, under any tag, and an "attachment" that
// lists a denied image's config, layers and manifest does not make them servable.
func TestAttackGateDisguisedArtifact(t *testing.T) {
	t.Parallel()
	w := newEnforceWorld(t)
	var signed, denied v1.Hash
	parallel(t, "set-up", map[string]func(*testing.T){
		"build": w.build(t.TempDir()),
		"signed": func(t *testing.T) {
			signed = w.signedImage(t, "disguise/app", w.trusted, fullName("disguise/app")+":v1")
		},
		"denied": func(t *testing.T) { denied = w.image(t, "disguise/denied") },
	})
	// A normal image (random tar+gzip layer, an image config for linux/amd64) whose layer
	// is labelled a simple signing payload: podman stores it, crane exports its files.
	layer, err := random.Layer(2048, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	disguisedImg, err := mutate.Append(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON),
		mutate.Addendum{Layer: layer, MediaType: simpleSigningType})
	if err != nil {
		t.Fatal(err)
	}
	w.reg.Push(t, "disguise/app:evil", disguisedImg)
	w.reg.Push(t, "disguise/app:"+harness.SigTag(signed), disguisedImg)
	layerDigest, err := layer.Digest()
	if err != nil {
		t.Fatal(err)
	}
	// The same repository: a ".sig" of a signed image listing the denied image's config
	// and layers as signature layers.
	dm := manifestOf(t, w.reg, "disguise/denied:v1")
	deniedBlobs := append([]v1.Descriptor{dm.Config}, dm.Layers...)
	// The denied image is pushed to disguise/app too, so that its blobs exist there.
	remoteImg, err := remote.Image(w.reg.Ref(t, "disguise/denied:v1"))
	if err != nil {
		t.Fatal(err)
	}
	w.reg.Push(t, "disguise/app:denied", remoteImg)
	var layers []map[string]any
	for _, d := range dm.Layers {
		layers = append(layers, map[string]any{"mediaType": simpleSigningType, "digest": d.Digest.String(), "size": d.Size})
	}
	// (The registry refuses a manifest listing a manifest digest as a layer; the unit test
	// TestGateManifestNeverServedAsBlob covers that one.)
	listing, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": string(types.OCIManifestSchema1),
		"config": map[string]any{"mediaType": string(types.OCIConfigJSON), "digest": dm.Config.Digest.String(), "size": dm.Config.Size},
		"layers": layers})
	if err != nil {
		t.Fatal(err)
	}
	// A second signed image of the repository, the forged .sig's subject.
	w.image(t, "src/disguise/other")
	w.copySigned(t, w.trusted, fullName("disguise/app")+":other", "src/disguise/other:v1", "disguise/app:other")
	other := w.digest(t, "disguise/app:other")
	w.reg.PutManifest(t, "disguise/app", harness.SigTag(other), string(types.OCIManifestSchema1), listing)

	pg := w.startPullgate(t)
	base := "http://" + pg.Host + "/v2/" + fullName("disguise/app")
	blob := func(d v1.Hash) answer { return call(t, http.MethodGet, base+"/blobs/"+d.String()) }

	t.Run("runnable image under a plain tag", func(t *testing.T) {
		call(t, http.MethodGet, base+"/manifests/evil").denied(t, "disguised image :evil")
		blob(layerDigest).denied(t, "its layer")
	})
	t.Run("runnable image as the .sig of an accepted image", func(t *testing.T) {
		call(t, http.MethodGet, base+"/manifests/v1").served(t, "signed image", signed)
		call(t, http.MethodGet, base+"/manifests/"+harness.SigTag(signed)).denied(t, "disguised .sig")
		blob(layerDigest).denied(t, "its layer")
	})
	t.Run("an attachment listing a denied image's blobs", func(t *testing.T) {
		call(t, http.MethodGet, base+"/manifests/"+denied.String()).denied(t, "denied image")
		for _, d := range deniedBlobs {
			blob(d.Digest).denied(t, "denied blob before")
		}
		call(t, http.MethodGet, base+"/manifests/other").served(t, "signed subject", other)
		call(t, http.MethodGet, base+"/manifests/"+harness.SigTag(other)).denied(t, "forged .sig")
		for _, d := range deniedBlobs {
			blob(d.Digest).denied(t, "denied blob "+d.Digest.String()+" after the forged .sig")
		}
		blob(denied).denied(t, "denied manifest as a blob")
	})
}

// TestAttackGateParentIndexPoison (issue 8.4, first attack): an attacker's unsigned index
// listing a victim's child does not change how the victim's by-digest fetch of that child
// is judged.
func TestAttackGateParentIndexPoison(t *testing.T) {
	t.Parallel()
	w := newEnforceWorld(t)
	var exact, indexOnly multiArch
	parallel(t, "set-up", map[string]func(*testing.T){
		"build": w.build(t.TempDir()),
		// matchExact: the children are signed for exact/app:v1, the index not at all.
		"exact": func(t *testing.T) {
			exact = w.signedIndex(t, "exact/poison")
			w.sig.PutSignatures(t, "exact/poison", exact.index, nil)
		},
		// DESIGN.md difference 1: only the index is signed, for :v1.
		"index only": func(t *testing.T) {
			indexOnly = w.pushIndex(t, "poison/app")
			raw, err := remote.Get(w.reg.Ref(t, "poison/app:v1"))
			if err != nil {
				t.Fatal(err)
			}
			w.sig.SignManifest(t, w.trusted, raw.Manifest, fullName("poison/app")+":v1", "poison/app")
		},
	})
	// The attacker only tags: the same index, unsigned for :poison.
	w.reg.Tag(t, exact.repo, "poison", exact.index)
	w.reg.Tag(t, indexOnly.repo, "poison", indexOnly.index)
	pg := w.startPullgate(t)

	for _, m := range []multiArch{exact, indexOnly} {
		t.Run(m.repo, func(t *testing.T) {
			base := "http://" + pg.Host + "/v2/" + fullName(m.repo) + "/manifests/"
			callFrom(t, victimIP, http.MethodGet, base+"v1").served(t, "victim's index", m.index)
			callFrom(t, attackerIP, http.MethodGet, base+"poison") // served or not, it must not matter
			callFrom(t, victimIP, http.MethodGet, base+m.amd64.String()).served(t, "victim's child after the attacker's :poison", m.amd64)
		})
	}
}

// TestAttackGateParentIndexCrossClient (issue 8.4, second attack): under a tag-scoped
// policy (app:dev accepts anything, app needs a signature), one client's fetch of the :dev
// index does not make its unsigned child servable by digest to another client.
func TestAttackGateParentIndexCrossClient(t *testing.T) {
	t.Parallel()
	w := newEnforceWorld(t)
	var dev multiArch
	parallel(t, "set-up", map[string]func(*testing.T){
		"build": w.build(t.TempDir()),
		"index": func(t *testing.T) { dev = w.pushIndex(t, "devscoped/app") },
	})
	w.reg.Tag(t, dev.repo, "dev", dev.index)
	policy := filepath.Join(t.TempDir(), "policy.json")
	testsupport.WriteFile(t, policy, fmt.Sprintf(`{"default":[{"type":"reject"}],"transports":{"docker":{
  %q: [{"type":"insecureAcceptAnything"}],
  %q: [{"type":"signedBy","keyType":"GPGKeys","keyPath":%q}]}}}`,
		fullName(dev.repo)+":dev", fullName(dev.repo), w.trusted.PublicKeyFile))
	pg := harness.StartPullgate(t, w.bin, w.pullgateConfig(t, policy, w.sig.RegistriesD))
	base := "http://" + pg.Host + "/v2/" + fullName(dev.repo) + "/manifests/"

	callFrom(t, victimIP, http.MethodGet, base+dev.amd64.String()).denied(t, "unsigned child by digest")
	callFrom(t, attackerIP, http.MethodGet, base+"dev").served(t, ":dev index", dev.index)
	callFrom(t, attackerIP, http.MethodGet, base+dev.amd64.String()).served(t, "the :dev client's own child", dev.amd64)
	e := callFrom(t, victimIP, http.MethodGet, base+dev.amd64.String()).denied(t, "another client's fetch of the unsigned child")
	if !strings.Contains(e.Message, "@"+dev.amd64.String()) {
		t.Errorf("denial %q is not about the digest identity", e.Message)
	}
}

// TestAttackGateAdmissionFlush (issue 8.5): a client pulls an accepted image while another
// client requests many "signature artifacts" (each listing many digests) of another
// repository; the victim's layers stay servable.
func TestAttackGateAdmissionFlush(t *testing.T) {
	t.Parallel()
	w := newEnforceWorld(t)
	var victim v1.Hash
	parallel(t, "set-up", map[string]func(*testing.T){
		"build": w.build(t.TempDir()),
		"victim": func(t *testing.T) {
			victim = w.signedImage(t, "flush/victim", w.trusted, fullName("flush/victim")+":v1")
		},
	})
	// The upstream serves the attacker's artifacts itself (no blob needs to exist):
	// /v2/flood/app/manifests/f<n>, each a "signature artifact" of floodDigests layers.
	const artifacts, floodDigests = 17, 200
	target, err := url.Parse(w.reg.URL.String())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	upstream := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var n int
		if _, err := fmt.Sscanf(r.URL.Path, "/v2/flood/app/manifests/f%d", &n); err != nil {
			rp.ServeHTTP(rw, r)
			return
		}
		var layers []map[string]any
		for i := range floodDigests {
			layers = append(layers, map[string]any{"mediaType": simpleSigningType,
				"digest": digestOf(fmt.Sprintf("flood %d %d", n, i)), "size": 100})
		}
		body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": string(types.OCIManifestSchema1),
			"config": map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": digestOf("{}"), "size": 2},
			"layers": layers})
		rw.Header().Set("Content-Type", string(types.OCIManifestSchema1))
		rw.Header().Set("Docker-Content-Digest", digestOf(string(body)))
		rw.Write(body)
	}))
	t.Cleanup(upstream.Close)
	upURL, err := url.Parse(upstream.URL)
	if err != nil {
		t.Fatal(err)
	}
	config := harness.WritePullgateConfig(t, harness.PullgateConfig{
		Upstreams: []harness.Upstream{{Registry: upstreamName, URL: upURL}}, DefaultUpstream: upstreamName,
		Policy: w.policy, RegistriesD: w.sig.RegistriesD,
		// A small verdict cache, so that the flood is short.
		Extra: "cache:\n  verdicts:\n    size: 10\n",
	})
	pg := harness.StartPullgate(t, w.bin, config)
	base := "http://" + pg.Host + "/v2/"

	callFrom(t, victimIP, http.MethodGet, base+fullName("flush/victim")+"/manifests/v1").served(t, "victim's image", victim)
	m := manifestOf(t, w.reg, "flush/victim:v1")
	blobs := append([]v1.Descriptor{m.Config}, m.Layers...)
	callFrom(t, victimIP, http.MethodGet, base+fullName("flush/victim")+"/blobs/"+blobs[0].Digest.String()).served(t, "victim's config", blobs[0].Digest)
	for n := range artifacts {
		callFrom(t, attackerIP, http.MethodGet, base+fullName("flood/app")+fmt.Sprintf("/manifests/f%d", n))
	}
	for _, d := range blobs[1:] {
		callFrom(t, victimIP, http.MethodGet, base+fullName("flush/victim")+"/blobs/"+d.Digest.String()).served(t, "victim's layer after the flood", d.Digest)
	}
}

func digestOf(s string) string {
	h, _, _ := v1.SHA256(strings.NewReader(s))
	return h.String()
}
