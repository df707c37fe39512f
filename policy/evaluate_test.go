package policy

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
)

const signedByTrusted = `{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"$DIR/trusted.gpg"}]}`

func rawSig(t *testing.T, key *packet.PrivateKey, payload string, opts ...func(*pgptest.SignOptions)) Signature {
	t.Helper()
	o := pgptest.SignOptions{Signers: []*packet.PrivateKey{key}}
	for _, f := range opts {
		f(&o)
	}
	return Signature{Format: FormatSimpleSigning, Data: pgptest.Sign(t, []byte(payload), o)}
}

// TestSimpleSigningSpecVectors covers SPEC 10.4 #27-#31 through the whole engine.
func TestSimpleSigningSpecVectors(t *testing.T) {
	f := newFixture(t)
	d := f.digest.String()
	withSubkey := pgptest.NewKey(t, "with-subkey", pgptest.KeyOptions{})
	subkey := withSubkey.AddSigningSubkey(t)
	withRevoked := pgptest.NewKey(t, "revoked-subkey", pgptest.KeyOptions{})
	revoked := withRevoked.AddSigningSubkey(t)
	revokedSig := f.sig(revoked, f.digest, "busybox:1")
	withRevoked.RevokeSubkey(t, revoked)
	f.write("subkeys.gpg", append(withSubkey.Public(t), withRevoked.Public(t)...))
	p := f.policy(`{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPaths":["$DIR/trusted.gpg","$DIR/subkeys.gpg"]}]}`)

	crit := func(typ, dgst, ref string) string {
		return `"critical":{"type":"` + typ + `","image":{"docker-manifest-digest":"` + dgst + `"},"identity":{"docker-reference":"` + ref + `"}}`
	}
	good := crit("atomic container signature", d, "busybox:1")
	sha512sum := sha512.Sum512(f.manifest)
	expired := func(o *pgptest.SignOptions) { o.Created = time.Now().Add(-2 * time.Hour); o.Lifetime = time.Hour }
	tests := []struct {
		name    string
		sig     Signature
		want    bool
		wantWhy string
	}{
		// 27
		{"valid", f.sig(f.trusted.Primary(), f.digest, "busybox:1"), true, ""},
		{"valid, uncompressed", rawSig(t, f.trusted.Primary(), `{`+good+`,"optional":{}}`), true, ""},
		// 28
		{"unknown key", f.sig(f.other.Primary(), f.digest, "busybox:1"), false, "which is not trusted"},
		{"signing subkey of a trusted key", f.sig(subkey, f.digest, "busybox:1"), true, ""},
		{"revoked subkey", revokedSig, false, "revoked"},
		{"expired signature", rawSig(t, f.trusted.Primary(), `{`+good+`,"optional":{}}`, expired), false, "expired"},
		// 29
		{"cosign payload type", rawSig(t, f.trusted.Primary(), `{`+crit("cosign container image signature", d, "busybox:1")+`,"optional":{}}`), false, "unexpected type"},
		// 30
		{"extra key in critical", rawSig(t, f.trusted.Primary(), `{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"`+d+`"},"identity":{"docker-reference":"busybox:1"},"x":1},"optional":{}}`), false, "critical.x: unknown key"},
		{"extra key in critical.image", rawSig(t, f.trusted.Primary(), `{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"`+d+`","x":1},"identity":{"docker-reference":"busybox:1"}},"optional":{}}`), false, "unknown key"},
		{"duplicate critical", rawSig(t, f.trusted.Primary(), `{`+good+`,`+good+`,"optional":{}}`), false, "duplicate key"},
		{"missing optional", rawSig(t, f.trusted.Primary(), `{`+good+`}`), false, `missing required key "optional"`},
		{"optional null", rawSig(t, f.trusted.Primary(), `{`+good+`,"optional":null}`), false, "not null"},
		{"fractional timestamp", rawSig(t, f.trusted.Primary(), `{`+good+`,"optional":{"timestamp":1.5}}`), false, "not an integer"},
		{"key case", rawSig(t, f.trusted.Primary(), `{"critical":{"type":"atomic container signature","image":{"Docker-manifest-digest":"`+d+`"},"identity":{"docker-reference":"busybox:1"}},"optional":{}}`), false, "unknown key"},
		{"unknown key in optional", rawSig(t, f.trusted.Primary(), `{`+good+`,"optional":{"x":{"y":[1]},"creator":"someone"}}`), true, ""},
		// 31
		{"other digest", f.sig(f.trusted.Primary(), digest.FromString("other"), "busybox:1"), false, "does not match the manifest"},
		{"sha512 of the right bytes", f.sig(f.trusted.Primary(), digest.Digest("sha512:"+hex.EncodeToString(sha512sum[:])), "busybox:1"), false, "does not match the manifest"},
		{"digest of other bytes", f.sig(f.trusted.Primary(), digest.FromBytes(append(f.manifest, ' ')), "busybox:1"), false, "does not match the manifest"},
		// corrupt data
		{"not OpenPGP", Signature{Format: FormatSimpleSigning, Data: []byte{0x88, 1, 2, 3}}, false, "not a valid OpenPGP"},
		{"truncated", Signature{Format: FormatSimpleSigning, Data: f.sig(f.trusted.Primary(), f.digest, "busybox:1").Data[:40]}, false, ""},
		{"unsigned literal data", Signature{Format: FormatSimpleSigning, Data: pgptest.Sign(t, []byte(`{`+good+`,"optional":{}}`), pgptest.SignOptions{})}, false, "not signed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := p.Evaluate(context.Background(), f.image("busybox:1"), sigSource(tt.sig))
			if err != nil {
				t.Fatal(err)
			}
			if v.Accepted != tt.want {
				t.Fatalf("accepted = %v, want %v: %s", v.Accepted, tt.want, v.Reason)
			}
			if !strings.Contains(v.Reason, tt.wantWhy) {
				t.Fatalf("reason %q does not contain %q", v.Reason, tt.wantWhy)
			}
			if v.Accepted != v.SignaturesVerified {
				t.Fatalf("SignaturesVerified = %v", v.SignaturesVerified)
			}
		})
	}
}

// TestBadSignaturesRejectOnlyThemselves is the engine part of SPEC 10.4 #32: two
// valid-OpenPGP signatures by an untrusted key, then a valid one, accept; the reason of a
// denial names every signature and why it failed.
func TestBadSignaturesRejectOnlyThemselves(t *testing.T) {
	f := newFixture(t)
	p := f.policy(signedByTrusted)
	wrong1 := f.sig(f.other.Primary(), f.digest, "busybox:1")
	wrong1.Origin = "lookaside http://sigs.example/library/busybox@" + f.digest.Encoded() + "/signature-1"
	wrong2 := f.sig(f.other.Primary(), f.digest, "busybox:1")
	wrong2.Origin = "lookaside http://sigs.example/library/busybox@" + f.digest.Encoded() + "/signature-2"
	good := f.sig(f.trusted.Primary(), f.digest, "busybox:1")
	good.Origin = "lookaside http://sigs.example/library/busybox@" + f.digest.Encoded() + "/signature-3"

	v, err := p.Evaluate(context.Background(), f.image("busybox:1"), sigSource(wrong1, wrong2, good))
	if err != nil || !v.Accepted {
		t.Fatalf("Evaluate = %+v, %v; want acceptance", v, err)
	}
	if !strings.Contains(v.Reason, "signature 3 (lookaside") || !strings.Contains(v.Reason, f.trusted.Fingerprint()) {
		t.Fatalf("acceptance reason %q", v.Reason)
	}

	v, err = p.Evaluate(context.Background(), f.image("busybox:1"), sigSource(wrong1, wrong2))
	if err != nil || v.Accepted {
		t.Fatalf("Evaluate = %+v, %v; want a denial", v, err)
	}
	keyID := strings.ToUpper(hex.EncodeToString([]byte{
		byte(f.other.Primary().KeyId >> 56), byte(f.other.Primary().KeyId >> 48), byte(f.other.Primary().KeyId >> 40), byte(f.other.Primary().KeyId >> 32),
		byte(f.other.Primary().KeyId >> 24), byte(f.other.Primary().KeyId >> 16), byte(f.other.Primary().KeyId >> 8), byte(f.other.Primary().KeyId)}))
	for _, want := range []string{"none of the signatures were accepted", "signature 1 (lookaside http://sigs.example/", "signature-2): signed by key ID " + keyID + ", which is not trusted"} {
		if !strings.Contains(v.Reason, want) {
			t.Errorf("reason %q does not contain %q", v.Reason, want)
		}
	}
	if v.Scope != "default" || v.Requirement != "[0] signedBy" || v.Identity != "docker.io/library/busybox:1" || v.Digest != f.digest {
		t.Errorf("verdict %+v", v)
	}
}

// TestSignatureFetchFailureIsIndeterminate: a source error is not a denial (SPEC 1.6).
func TestSignatureFetchFailureIsIndeterminate(t *testing.T) {
	f := newFixture(t)
	srcErr := errors.New("lookaside answered 500")
	for _, policy := range []string{
		signedByTrusted,
		`{"default":[{"type":"insecureAcceptAnything"},{"type":"signedBy","keyType":"GPGKeys","keyPath":"$DIR/trusted.gpg"}]}`,
		`{"default":[{"type":"signedBy","keyType":"signedByGPGKeys","keyPath":"$DIR/trusted.gpg"}]}`,
		`{"default":[{"type":"sigstoreSigned","keyPath":"$DIR/cosign.pub"}]}`,
	} {
		pem, _ := testsupport.ECDSAKeyPEM(t)
		f.write("cosign.pub", pem)
		p := f.policy(policy)
		src := &countingSource{err: srcErr}
		v, err := p.Evaluate(context.Background(), f.image("busybox:1"), src)
		if !errors.Is(err, ErrIndeterminate) || !errors.Is(err, srcErr) {
			t.Fatalf("%s: error = %v, want ErrIndeterminate wrapping the source error", policy, err)
		}
		if v != (Verdict{}) {
			t.Fatalf("%s: an indeterminate evaluation returned a verdict %+v", policy, v)
		}
	}
	// Without a source, a policy that needs signatures cannot decide either.
	p := f.policy(signedByTrusted)
	if _, err := p.Evaluate(context.Background(), f.image("busybox:1"), nil); !errors.Is(err, ErrIndeterminate) {
		t.Fatalf("nil source: error = %v", err)
	}
}

func TestEvaluateRequirementSemantics(t *testing.T) {
	f := newFixture(t)
	byTrusted := f.sig(f.trusted.Primary(), f.digest, "busybox:1")
	byOther := f.sig(f.other.Primary(), f.digest, "busybox:1")
	cosign := Signature{Format: FormatCosign, MIMEType: "application/vnd.dev.cosign.simplesigning.v1+json", Data: []byte("{}")}
	tests := []struct {
		name      string
		policy    string
		sigs      []Signature
		want      bool
		wantReq   string
		wantWhy   string
		wantCalls int32
	}{
		{"insecureAcceptAnything", `{"default":[{"type":"insecureAcceptAnything"}]}`, nil, true, "", "without checking signatures", 0},
		{"reject", `{"default":[{"type":"reject"}]}`, nil, false, "[0] reject", "docker.io/library/busybox:1 is rejected by policy", 0},
		{"signedBaseLayer always denies", `{"default":[{"type":"signedBaseLayer","baseLayerIdentity":{"type":"matchRepository"}}]}`, []Signature{byTrusted}, false, "[0] signedBaseLayer", "not implemented", 0},
		{"reject first: signatures never read", `{"default":[{"type":"reject"},{"type":"signedBy","keyType":"GPGKeys","keyPath":"$DIR/trusted.gpg"}]}`, []Signature{byTrusted}, false, "[0] reject", "", 0},
		{"first denial decides", `{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"$DIR/other.gpg"},{"type":"reject"}]}`, []Signature{byTrusted}, false, "[0] signedBy", "not trusted", 1},
		{"every requirement must allow", `{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"$DIR/trusted.gpg"},{"type":"signedBy","keyType":"GPGKeys","keyPath":"$DIR/other.gpg"}]}`, []Signature{byTrusted}, false, "[1] signedBy", "not trusted", 1},
		{"different signatures for different requirements, read once", `{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"$DIR/trusted.gpg"},{"type":"signedBy","keyType":"GPGKeys","keyPath":"$DIR/other.gpg"}]}`, []Signature{byTrusted, byOther}, true, "", "[0] signedBy: signature 1 is signed by key", 1},
		{"no signatures", signedByTrusted, nil, false, "[0] signedBy", "a signature was required, but no signature exists", 1},
		{"signedBy does not see cosign signatures", signedByTrusted, []Signature{cosign}, false, "[0] signedBy", "no signature exists", 1},
		{"unimplemented keyType", `{"default":[{"type":"signedBy","keyType":"signedByGPGKeys","keyPath":"$DIR/trusted.gpg"}]}`, []Signature{byTrusted}, false, "[0] signedBy", `unimplemented keyType value "signedByGPGKeys"`, 1},
		{"unimplemented keyType without signatures", `{"default":[{"type":"signedBy","keyType":"X509Certificates","keyPath":"$DIR/trusted.gpg"}]}`, nil, false, "[0] signedBy", "no signature exists", 1},
		{"keyPaths empty", `{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPaths":[]}]}`, []Signature{byTrusted}, false, "[0] signedBy", "no public keys imported", 1},
		{"keyPaths lists several keyrings", `{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPaths":["$DIR/other.gpg","$DIR/trusted.gpg"]}]}`, []Signature{byTrusted}, true, "", "", 1},
		{"armored keyring", `{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"$DIR/trusted.asc"}]}`, []Signature{byTrusted}, true, "", "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := f.policy(tt.policy)
			src := sigSource(tt.sigs...)
			v, err := p.Evaluate(context.Background(), f.image("busybox:1"), src)
			if err != nil {
				t.Fatal(err)
			}
			if v.Accepted != tt.want || v.Requirement != tt.wantReq || !strings.Contains(v.Reason, tt.wantWhy) {
				t.Fatalf("verdict %+v, want accepted=%v requirement=%q reason containing %q", v, tt.want, tt.wantReq, tt.wantWhy)
			}
			if got := src.calls.Load(); got != tt.wantCalls {
				t.Fatalf("signature source called %d times, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestEvaluateRefusesInvalidImages(t *testing.T) {
	f := newFixture(t)
	p := f.policy(`{"default":[{"type":"insecureAcceptAnything"}]}`)
	both := mustRef(t, "busybox:1@"+f.digest.String())
	tests := map[string]Image{
		"no identity":             {Digest: f.digest, Manifest: f.manifest},
		"tag and digest":          {Identity: both, Digest: f.digest, Manifest: f.manifest},
		"no digest":               {Identity: mustRef(t, "busybox:1"), Manifest: f.manifest},
		"digest of other bytes":   {Identity: mustRef(t, "busybox:1"), Digest: digest.FromString("x"), Manifest: f.manifest},
		"unsupported digest algo": {Identity: mustRef(t, "busybox:1"), Digest: "md5:0123", Manifest: f.manifest},
	}
	for name, img := range tests {
		if _, err := p.Evaluate(context.Background(), img, sigSource()); !errors.Is(err, ErrInvalidImage) || !errors.Is(err, ErrIndeterminate) {
			t.Errorf("%s: error = %v", name, err)
		}
	}
}

func TestNewFormatBlobs(t *testing.T) {
	// SPEC 10.4 #35: the 0x00 "simple-signing" wrapper is the raw signature.
	f := newFixture(t)
	p := f.policy(signedByTrusted)
	raw := f.sig(f.trusted.Primary(), f.digest, "busybox:1").Data
	f.wantBlobAccepted(p, append([]byte("\x00simple-signing\n"), raw...))
	if _, err := ParseSignatureBlob(append([]byte("\x00bogus\n"), raw...)); !errors.Is(err, ErrUnrecognizedSignature) {
		t.Fatalf("bogus format: error = %v", err)
	}
}

func TestVerdictSummary(t *testing.T) {
	f := newFixture(t)
	p := f.policy(`{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{"docker.io":[{"type":"reject"}]}}}`)
	v, err := p.Evaluate(context.Background(), f.image("busybox:1"), sigSource())
	if err != nil {
		t.Fatal(err)
	}
	want := `docker.io/library/busybox:1 (` + f.digest.String() + `) rejected by policy transports.docker["docker.io"] requirement [0] reject: running image docker.io/library/busybox:1 is rejected by policy`
	if got := v.Summary(); got != want {
		t.Fatalf("Summary() = %q\nwant        %q", got, want)
	}
	v, _ = p.Evaluate(context.Background(), f.image("quay.io/a/b:1"), sigSource())
	if got := v.Summary(); !strings.Contains(got, "quay.io/a/b:1 ("+f.digest.String()+") accepted by policy default: [0] insecureAcceptAnything") {
		t.Fatalf("Summary() = %q", got)
	}
}

// TestEvaluateConcurrently: a Policy is shared by all requests (run with -race).
func TestEvaluateConcurrently(t *testing.T) {
	f := newFixture(t)
	p := f.policy(signedByTrusted)
	sigs := []Signature{f.sig(f.other.Primary(), f.digest, "busybox:1"), f.sig(f.trusted.Primary(), f.digest, "busybox:1")}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for range 10 {
				v, err := p.Evaluate(context.Background(), f.image("busybox:1"), sigSource(sigs...))
				if err == nil && !v.Accepted {
					err = errors.New(v.Reason)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestDigestOnlyEvaluation: a child listed by an index is evaluated by its digest alone
// (Image.Manifest nil), which signatures bind.
func TestDigestOnlyEvaluation(t *testing.T) {
	f := newFixture(t)
	p := f.policy(signedByTrusted)
	child := digest.FromString("child manifest")
	img := Image{Identity: mustRef(t, "busybox:1"), Digest: child}

	v, err := p.Evaluate(context.Background(), img, sigSource(f.sig(f.trusted.Primary(), child, "busybox:1")))
	if err != nil || !v.Accepted {
		t.Fatalf("signed child: %+v, %v", v, err)
	}
	v, err = p.Evaluate(context.Background(), img, sigSource(f.sig(f.trusted.Primary(), f.digest, "busybox:1")))
	if err != nil || v.Accepted || !strings.Contains(v.Reason, "does not match the manifest") {
		t.Fatalf("signature for a sibling digest: %+v, %v", v, err)
	}
	sha512Img := Image{Identity: mustRef(t, "busybox:1"), Digest: digest.SHA512.FromString("x")}
	if _, err := p.Evaluate(context.Background(), sha512Img, sigSource()); !errors.Is(err, ErrInvalidImage) {
		t.Fatalf("sha512 digest without bytes: %v", err)
	}
}
