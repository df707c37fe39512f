package integration

// Verdict parity with podman on OpenPGP forms, through the built binary (issue 14 items 5
// and 6): an upstream signature API entry that is ASCII-armored, as gpgme accepts it, and
// a key file of two armored blocks whose second key signed the image.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
)

// upstreamSignatureAPI makes a registry offer the signature API (SPEC.md 4), serving for
// each manifest digest the entries stored in sigs (digest string → contents).
func upstreamSignatureAPI(sigs *sync.Map) harness.RegistryOption {
	return harness.WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2/" {
				w.Header().Set("X-Registry-Supports-Signatures", "1")
			}
			if !strings.HasPrefix(r.URL.Path, "/extensions/v2/") {
				next.ServeHTTP(w, r)
				return
			}
			_, d, _ := strings.Cut(r.URL.Path, "/signatures/")
			var entries []any
			if v, ok := sigs.Load(d); ok {
				for i, c := range v.([][]byte) {
					entries = append(entries, map[string]any{"schemaVersion": 2, "type": "atomic", "name": d + "@" + string(rune('a'+i)), "content": c})
				}
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"signatures": entries})
		})
	})
}

// pgpPullgate starts pullgate in front of reg with a policy requiring a simple signature
// by a key of the key file keyFile.
func pgpPullgate(t *testing.T, reg *harness.Registry, keyFile []byte) *harness.Pullgate {
	t.Helper()
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "keys.asc")
	policyPath := filepath.Join(dir, "policy.json")
	regd := filepath.Join(dir, "registries.d")
	pol := testsupport.JSON(t, map[string]any{"default": []any{map[string]any{"type": "signedBy", "keyType": "GPGKeys", "keyPath": keyPath}}})
	for path, data := range map[string][]byte{keyPath: keyFile, policyPath: pol} {
		testsupport.WriteFile(t, path, data)
	}
	if err := os.Mkdir(regd, 0o700); err != nil {
		t.Fatal(err)
	}
	config := harness.WritePullgateConfig(t, harness.PullgateConfig{
		Upstreams:       []harness.Upstream{{Registry: reg.Host, URL: reg.URL}},
		DefaultUpstream: reg.Host, Policy: policyPath, RegistriesD: regd,
	})
	return harness.StartPullgate(t, harness.BuildPullgate(t, t.TempDir()), config)
}

// TestAttackPGPArmoredSignatureAPI: the upstream's signature API holds an ASCII-armored
// signature by the trusted key (`gpg --armor --sign` output; podman accepts it, gpgme
// dearmors it). pullgate serves the manifest, and its own signature API passes the entry
// on as it is.
func TestAttackPGPArmoredSignatureAPI(t *testing.T) {
	var sigs sync.Map
	reg := harness.StartRegistry(t, upstreamSignatureAPI(&sigs))
	d := reg.Push(t, "pgp/armored:v1", harness.OCIImage(t, 1, 256, harness.LinuxAMD64))
	trusted := pgptest.NewKey(t, "trusted", pgptest.KeyOptions{})
	sig := pgptest.Armor(t, "PGP MESSAGE", pgptest.SimpleSignature(t, trusted, d.String(), reg.Host+"/pgp/armored:v1"))
	sigs.Store(d.String(), [][]byte{sig})
	pg := pgpPullgate(t, reg, trusted.ArmoredPublic(t))
	base := "http://" + pg.Host

	if m := call(t, http.MethodGet, base+"/v2/pgp/armored/manifests/v1"); m.status != http.StatusOK {
		t.Fatalf("manifest signed by an armored signature API entry: %d %q, want 200", m.status, m.body)
	}
	s := call(t, http.MethodGet, base+"/extensions/v2/pgp/armored/signatures/"+d.String())
	var list struct {
		Signatures []struct {
			Content []byte `json:"content"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(s.body, &list); s.status != http.StatusOK || err != nil {
		t.Fatalf("signature API: %d %q (%v)", s.status, s.body, err)
	}
	if len(list.Signatures) != 1 || !bytes.Equal(list.Signatures[0].Content, sig) {
		t.Fatalf("signature API served %d entries, want the armored one as it came", len(list.Signatures))
	}
}

// TestAttackPGPKeyFileSecondBlock: the policy's key file holds two armored blocks (two
// `gpg --armor --export` outputs); the image is signed by the key of the second block,
// which podman trusts (gpg --import imports both). pullgate serves the manifest.
func TestAttackPGPKeyFileSecondBlock(t *testing.T) {
	var sigs sync.Map
	reg := harness.StartRegistry(t, upstreamSignatureAPI(&sigs))
	d := reg.Push(t, "pgp/second:v1", harness.OCIImage(t, 1, 256, harness.LinuxAMD64))
	first := pgptest.NewKey(t, "first", pgptest.KeyOptions{})
	second := pgptest.NewKey(t, "second", pgptest.KeyOptions{})
	sigs.Store(d.String(), [][]byte{pgptest.SimpleSignature(t, second, d.String(), reg.Host+"/pgp/second:v1")})
	keyFile := append(append(first.ArmoredPublic(t), '\n'), second.ArmoredPublic(t)...)
	pg := pgpPullgate(t, reg, keyFile)

	if m := call(t, http.MethodGet, "http://"+pg.Host+"/v2/pgp/second/manifests/v1"); m.status != http.StatusOK {
		t.Fatalf("manifest signed by the second block's key: %d %q, want 200", m.status, m.body)
	}
}
