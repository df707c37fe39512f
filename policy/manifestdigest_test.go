package policy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport"
)

const testSchema1Payload = "{\n   \"schemaVersion\": 1,\n   \"name\": \"library/busybox\",\n   \"tag\": \"latest\",\n   \"architecture\": \"amd64\",\n   \"fsLayers\": [],\n   \"history\": []\n}"

func b64url(b []byte) string { return strings.TrimRight(base64.URLEncoding.EncodeToString(b), "=") }

// ecJWK returns a libtrust-style EC P-256 JWK with a correct key ID.
func ecJWK(t *testing.T) map[string]any {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	point, err := k.PublicKey.Bytes() // 0x04 || x || y, 32 bytes each
	if err != nil {
		t.Fatal(err)
	}
	x, y := point[1:33], point[33:]
	// libtrust hashes the coordinates as big.Int.Bytes gives them: no leading zeros.
	h := sha256.New()
	h.Write([]byte("ECP-256"))
	h.Write(bytes.TrimLeft(x, "\x00"))
	h.Write(bytes.TrimLeft(y, "\x00"))
	return map[string]any{"kty": "EC", "crv": "P-256", "x": b64url(x), "y": b64url(y), "kid": libtrustKeyID(h.Sum(nil)[:30])}
}

// signedSchema1 builds a signed schema1 manifest around testSchema1Payload the way libtrust's
// PrettySignature does, with the given protected header and header.
func signedSchema1(t *testing.T, protected map[string]any, header map[string]any) []byte {
	t.Helper()
	formatLength := len(testSchema1Payload) - 2
	if protected == nil {
		protected = map[string]any{"formatLength": formatLength, "formatTail": b64url([]byte("\n}")), "time": "2026-01-01T00:00:00Z"}
	}
	if header == nil {
		header = map[string]any{"jwk": ecJWK(t), "alg": "ES256"}
	}
	p, _ := json.Marshal(protected)
	sigs, _ := json.MarshalIndent([]map[string]any{{"header": header, "signature": "c2lnbmF0dXJl", "protected": b64url(p)}}, "   ", "   ")
	return []byte(testSchema1Payload[:formatLength] + ",\n   \"signatures\": " + string(sigs) + "\n}")
}

// TestManifestDigest covers SPEC 2.5 and 10.4 #31: sha256 only, and schema1 signed
// manifests hashed over their JWS payload.
func TestManifestDigest(t *testing.T) {
	payloadDigest := digest.FromString(testSchema1Payload)
	signed := signedSchema1(t, nil, nil)
	badKid := ecJWK(t)
	badKid["kid"] = "AAAA:BBBB"
	formatLength := len(testSchema1Payload) - 2
	tests := []struct {
		name     string
		manifest string
		signed   digest.Digest
		want     bool
		wantErr  string
	}{
		{"OCI manifest", testManifest, digest.FromString(testManifest), true, ""},
		{"schema1 signed: payload digest", string(signed), payloadDigest, true, ""},
		{"schema1 signed: raw bytes digest", string(signed), digest.FromBytes(signed), false, ""},
		{"schema1 unsigned: raw bytes", testSchema1Payload, payloadDigest, true, ""},
		{"schema1 null signatures: raw bytes", strings.Replace(testSchema1Payload, "\n}", ",\"signatures\":null}", 1), digest.FromString(strings.Replace(testSchema1Payload, "\n}", ",\"signatures\":null}", 1)), true, ""},
		{"schema2 media type with signatures: raw bytes", `{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","signatures":[1]}`, digest.FromString(`{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","signatures":[1]}`), true, ""},
		{"schemaVersion as a string: raw bytes", `{"schemaVersion":"1","signatures":[]}`, digest.FromString(`{"schemaVersion":"1","signatures":[]}`), true, ""},
		{"empty signature list: empty payload", `{"schemaVersion":1,"signatures":[]}`, digest.FromString(""), true, ""},
		{"signatures spelled differently", `{"schemaVersion":1,"Signatures":[]}`, digest.FromString(`{"schemaVersion":1,"Signatures":[]}`), false, "missing signature key"},
		{"wrong JWK key ID", string(signedSchema1(t, nil, map[string]any{"jwk": badKid, "alg": "ES256"})), payloadDigest, false, "JWK EC public key ID does not match"},
		{"unsupported JWK type", string(signedSchema1(t, nil, map[string]any{"jwk": map[string]any{"kty": "OKP"}, "alg": "ES256"})), payloadDigest, false, "not supported"},
		{"missing header", string(signedSchema1(t, nil, map[string]any{})), payloadDigest, true, ""},
		{"missing format length", string(signedSchema1(t, map[string]any{"formatTail": b64url([]byte("\n}"))}, nil)), payloadDigest, false, "missing formatted length"},
		{"format length too large", string(signedSchema1(t, map[string]any{"formatLength": 1 << 20, "formatTail": b64url([]byte("\n}"))}, nil)), payloadDigest, false, "invalid format length"},
		{"negative format length", string(signedSchema1(t, map[string]any{"formatLength": -5, "formatTail": b64url([]byte("\n}"))}, nil)), payloadDigest, false, "invalid format length"},
		{"bad tail encoding", string(signedSchema1(t, map[string]any{"formatLength": formatLength, "formatTail": "@@@"}, nil)), payloadDigest, false, "base64"},
		{"protected not base64url", strings.Replace(string(signed), `"protected": "`, `"protected": "!`, 1), payloadDigest, false, "base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := manifestMatchesDigest([]byte(tt.manifest), tt.signed)
			testsupport.WantErr(t, err, tt.wantErr)
			if got != tt.want {
				t.Fatalf("manifestMatchesDigest = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestSchema1Evaluation is SPEC 10.4 #31's last vector through the engine: a signature
// over the payload digest of a signed schema1 manifest accepts; one over the raw bytes
// does not.
func TestSchema1Evaluation(t *testing.T) {
	f := newFixture(t)
	p := f.policy(signedByTrusted)
	signed := signedSchema1(t, nil, nil)
	payloadDigest := digest.FromString(testSchema1Payload)
	for _, d := range []digest.Digest{payloadDigest, digest.FromBytes(signed)} { // a registry may name it by either
		img := Image{Identity: mustRef(t, "busybox:1"), Digest: d, Manifest: signed}
		v, err := p.Evaluate(t.Context(), img, sigSource(f.sig(f.trusted.Primary(), payloadDigest, "busybox:1")))
		if err != nil || !v.Accepted {
			t.Fatalf("payload digest signature: %+v, %v", v, err)
		}
		v, err = p.Evaluate(t.Context(), img, sigSource(f.sig(f.trusted.Primary(), digest.FromBytes(signed), "busybox:1")))
		if err != nil || v.Accepted {
			t.Fatalf("raw digest signature: %+v, %v", v, err)
		}
	}
}
