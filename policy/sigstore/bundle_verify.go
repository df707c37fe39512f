package sigstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
)

// BundleClaims is what a verified Sigstore bundle says: the digests it signs. A bundle
// carries no docker-reference identity.
type BundleClaims struct {
	Subjects []digest.Digest
}

// bundleContent is what a bundle signs, and how to check its signature.
type bundleContent struct {
	subjects []digest.Digest
	// binding is what a Rekor entry must record (verifierDER is filled in per candidate).
	binding logBinding
	// check verifies signature with one candidate key.
	check func(key crypto.PublicKey) error
}

// VerifyBundle verifies a Sigstore bundle (media types application/vnd.dev.sigstore.bundle
// v0.1-v0.3+json) offline against t, and returns the subject digests it signs.
//
// Content: a messageSignature (its message digest is the subject; SHA-256 only) or a DSSE
// envelope with one signature over a cosign signing statement (in-toto v1, predicate
// https://sigstore.dev/cosign/sign/v1). Keys and certificates are checked as for
// attachments; Fulcio takes its time from a Rekor entry whose inclusion promise (SET)
// verifies with t.RekorKeys and which records this signature (kinds hashedrekord and dsse,
// version 0.0.1). Inclusion proofs, checkpoints and RFC 3161 timestamps are not verified, so
// Rekor v2 entries (which have no SET) do not count.
func (t *Trust) VerifyBundle(bundle []byte, now time.Time) (BundleClaims, error) {
	if err := t.validate(); err != nil {
		return BundleClaims{}, err
	}
	if len(bundle) > maxBundleBytes {
		return BundleClaims{}, rejectf("the bundle is larger than %d bytes", maxBundleBytes)
	}
	b, err := parseBundle(bundle)
	if err != nil {
		return BundleClaims{}, rejectf("invalid Sigstore bundle: %w", err)
	}
	content, err := b.content()
	if err != nil {
		return BundleClaims{}, err
	}
	candidates, err := t.bundleCandidates(b, content, now)
	if err != nil {
		return BundleClaims{}, err
	}
	if err := verifyWithCandidates(candidates, content.check); err != nil {
		return BundleClaims{}, err
	}
	return BundleClaims{Subjects: content.subjects}, nil
}

func (b *untrustedBundle) content() (bundleContent, error) {
	if m := b.messageSignature; m != nil {
		if m.digest == nil {
			return bundleContent{}, rejectf("the bundle's messageSignature has no messageDigest")
		}
		if m.digestAlgorithm != "SHA2_256" || len(m.digest) != sha256.Size {
			return bundleContent{}, rejectf("unsupported messageDigest algorithm %q (only SHA2_256 is supported)", m.digestAlgorithm)
		}
		return bundleContent{
			subjects: []digest.Digest{digest.NewDigestFromBytes(digest.SHA256, m.digest)},
			binding:  logBinding{kind: kindHashedRekord, signature: m.signature, dataSHA256: m.digest},
			check:    func(key crypto.PublicKey) error { return verifyDigest(key, m.digest, m.signature) },
		}, nil
	}
	env := b.envelope
	if env.payloadType != inTotoPayloadType {
		return bundleContent{}, rejectf("the bundle's DSSE payloadType is %q, expected %q", env.payloadType, inTotoPayloadType)
	}
	if len(env.signatures) != 1 {
		return bundleContent{}, rejectf("the bundle's DSSE envelope has %d signatures, expected 1", len(env.signatures))
	}
	subjects, err := parseStatementSubjects(env.payload)
	if err != nil {
		return bundleContent{}, rejectf("invalid statement in the bundle's DSSE envelope: %w", err)
	}
	sig := env.signatures[0]
	pae := dssePAE(env.payloadType, env.payload)
	payloadSHA256 := sha256.Sum256(env.payload)
	return bundleContent{
		subjects: subjects,
		binding:  logBinding{kind: kindDSSE, signature: sig, dataSHA256: payloadSHA256[:]},
		check:    func(key crypto.PublicKey) error { return verifyMessage(key, hashKeyDefault, pae, sig) },
	}, nil
}

// bundleCandidates returns the keys the bundle's signature may be verified with.
func (t *Trust) bundleCandidates(b *untrustedBundle, c bundleContent, now time.Time) ([]crypto.PublicKey, error) {
	switch {
	case len(t.PublicKeys) > 0 && len(t.RekorKeys) == 0:
		// The bundle's publicKey hint (or certificate) is not trusted; the configured keys are.
		return t.PublicKeys, nil

	case len(t.PublicKeys) > 0:
		entries, err := b.verifiedTlogEntries(t.RekorKeys)
		if err != nil {
			return nil, err
		}
		candidates, mismatches, err := firstBoundKey(t.PublicKeys, func(der []byte) error {
			_, err := findBoundEntry(entries, c.binding, der)
			return err
		})
		if err != nil || candidates != nil {
			return candidates, err
		}
		return nil, rejectf("no Rekor entry of the bundle matches a configured public key: %s", joinDistinct(mismatches))

	case t.Fulcio != nil:
		leaf, intermediates, err := b.certificates()
		if err != nil {
			return nil, err
		}
		entries, err := b.verifiedTlogEntries(t.RekorKeys)
		if err != nil {
			return nil, err
		}
		entry, err := findBoundEntry(entries, c.binding, leaf.Raw)
		if err != nil {
			return nil, err
		}
		return oneKey(t.Fulcio.verifyLeaf(leaf, intermediates, entry.integratedTime))

	default: // t.PKI != nil, as validate ensured
		leaf, intermediates, err := b.certificates()
		if err != nil {
			return nil, err
		}
		return oneKey(t.PKI.verifyLeaf(leaf, intermediates, now))
	}
}

// certificates parses the bundle's leaf certificate and the rest of its chain. Unlike
// the .sig chain annotation, a bundle's chain omits the root, so nothing is dropped.
func (b *untrustedBundle) certificates() (*x509.Certificate, []*x509.Certificate, error) {
	if len(b.material.certificates) == 0 {
		return nil, nil, rejectf("the bundle has a public key, not a certificate")
	}
	var certs []*x509.Certificate
	for i, der := range b.material.certificates {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, rejectf("invalid certificate %d in the bundle: %w", i+1, err)
		}
		certs = append(certs, c)
	}
	return certs[0], certs[1:], nil
}

// verifiedTlogEntries returns the bundle's entries whose SET verifies with rekorKeys. None
// is a rejection, which says why each entry failed.
func (b *untrustedBundle) verifiedTlogEntries(rekorKeys []*ecdsa.PublicKey) ([]verifiedEntry, error) {
	entries := b.material.tlogEntries
	if len(entries) == 0 {
		return nil, rejectf("the bundle has no Rekor entry, and a Rekor public key is configured")
	}
	var verified []verifiedEntry
	var failures []string
	for i, e := range entries {
		v, err := e.verify(rekorKeys)
		if err != nil {
			failures = append(failures, fmt.Sprintf("entry %d: %v", i+1, err))
			continue
		}
		verified = append(verified, v)
	}
	if len(verified) == 0 {
		return nil, rejectf("no Rekor entry of the bundle is vouched for by a configured Rekor key: %s", joinDistinct(failures))
	}
	return verified, nil
}

// verify checks the entry's SET: Rekor signs the same payload as for .sig attachments, with
// the body in base64 and the log ID in hex (sigstore-go pkg/tlog VerifySET).
func (e *tlogEntry) verify(rekorKeys []*ecdsa.PublicKey) (verifiedEntry, error) {
	if e.signedEntryTimestamp == nil {
		return verifiedEntry{}, rejectf("no inclusion promise (signed entry timestamp)")
	}
	p := rekorPayload{
		Body:           base64.StdEncoding.EncodeToString(e.canonicalizedBody),
		IntegratedTime: newJSONInteger(e.integratedTime),
		LogIndex:       newJSONInteger(e.logIndex),
		LogID:          hex.EncodeToString(e.logKeyID),
	}
	v, err := p.verify(rekorKeys, e.signedEntryTimestamp)
	if err != nil {
		return verifiedEntry{}, err
	}
	return v, nil
}

// findBoundEntry returns the first verified entry that records the signature by the key
// or certificate whose DER is verifierDER.
func findBoundEntry(entries []verifiedEntry, binding logBinding, verifierDER []byte) (verifiedEntry, error) {
	binding.verifierDER = verifierDER
	var failures []string
	for _, e := range entries {
		err := checkRekorBody(e.body, binding)
		if err == nil {
			return e, nil
		}
		failures = append(failures, err.Error())
	}
	if len(failures) == 1 {
		return verifiedEntry{}, rejectf("%s", failures[0])
	}
	return verifiedEntry{}, rejectf("none of the %d Rekor entries matches: %s", len(failures), joinDistinct(failures))
}

// firstBoundKey returns, as the only candidate, the first of keys whose DER encoding bound
// accepts; when bound accepts none, what it said of each key, in order.
func firstBoundKey(keys []crypto.PublicKey, bound func(der []byte) error) ([]crypto.PublicKey, []string, error) {
	var mismatches []string
	for _, key := range keys {
		der, err := publicKeyDER(key)
		if err != nil {
			return nil, nil, err
		}
		err = bound(der)
		if err == nil {
			return []crypto.PublicKey{key}, nil, nil
		}
		mismatches = append(mismatches, err.Error())
	}
	return nil, mismatches, nil
}

// oneKey is the key a certificate check returned, as the list of keys a signature may
// be verified with.
func oneKey(key crypto.PublicKey, err error) ([]crypto.PublicKey, error) {
	if err != nil {
		return nil, err
	}
	return []crypto.PublicKey{key}, nil
}
