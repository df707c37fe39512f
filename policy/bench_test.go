package policy

import (
	"context"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
	"github.com/pullgate/pullgate/policy/simplesign"
)

// BenchmarkSimpleSigningVerification is one cold simple-signing check as the engine makes
// it: OpenPGP parse and verification of a gpg-style (compressed) message, strict payload
// parse, manifest digest and identity checks. The keyring is loaded once, as at policy
// load time; nothing else is cached between iterations.
func BenchmarkSimpleSigningVerification(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts pgptest.KeyOptions
	}{
		{"RSA-3072", pgptest.KeyOptions{RSABits: 3072}},
		{"Ed25519", pgptest.KeyOptions{}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			key := pgptest.NewKey(b, "bench", bc.opts)
			ring, err := simplesign.ParseKeyring(key.Public(b))
			if err != nil {
				b.Fatal(err)
			}
			img := Image{Identity: mustRef(b, "quay.io/example/app:1"), Manifest: []byte(testManifest)}
			img.Digest = digestOf(img.Manifest)
			blob := pgptest.Sign(b, pgptest.Payload(img.Digest.String(), "quay.io/example/app:1"),
				pgptest.SignOptions{Signers: []*packet.PrivateKey{key.Primary()}, Compress: true})
			ev := &evaluation{img: img, now: time.Now()}
			identity := matchRepoDigestOrExact{}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				v, err := ring.Verify(blob, ev.now)
				if err != nil {
					b.Fatal(err)
				}
				if err := ev.checkDigest(v.Payload.ManifestDigest); err != nil {
					b.Fatal(err)
				}
				if !identity.matches(img.Identity, v.Payload.DockerReference) {
					b.Fatal("identity rejected")
				}
			}
		})
	}
}

// BenchmarkEvaluateThirdSignatureValid is a full policy evaluation (scope selection,
// signedBy, signature verification) of an image with three signatures of which only the
// third is valid: the first two are valid OpenPGP by an untrusted key.
func BenchmarkEvaluateThirdSignatureValid(b *testing.B) {
	trusted := pgptest.NewKey(b, "trusted", pgptest.KeyOptions{RSABits: 3072})
	other := pgptest.NewKey(b, "other", pgptest.KeyOptions{RSABits: 3072})
	dir := b.TempDir()
	keyPath := dir + "/trusted.gpg"
	if err := writeFile(keyPath, trusted.Public(b)); err != nil {
		b.Fatal(err)
	}
	p, err := Parse([]byte(`{"default":[{"type":"reject"}],"transports":{"docker":{
		"quay.io/example":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"`+keyPath+`"}]}}}`), "bench.json")
	if err != nil {
		b.Fatal(err)
	}
	img := Image{Identity: mustRef(b, "quay.io/example/app:1"), Manifest: []byte(testManifest)}
	img.Digest = digestOf(img.Manifest)
	sign := func(k *pgptest.Key) Signature {
		return Signature{Format: FormatSimpleSigning, Data: pgptest.Sign(b, pgptest.Payload(img.Digest.String(), "quay.io/example/app:1"),
			pgptest.SignOptions{Signers: []*packet.PrivateKey{k.Primary()}, Compress: true})}
	}
	src := sigSource(sign(other), sign(other), sign(trusted))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		v, err := p.Evaluate(ctx, img, src)
		if err != nil || !v.Accepted {
			b.Fatalf("%+v, %v", v, err)
		}
	}
}
