package sigstore

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"time"

	"github.com/pullgate/pullgate/policy/strictjson"
)

// Rekor entry kinds and the one version of each that is understood.
const (
	kindHashedRekord = "hashedrekord"
	kindDSSE         = "dsse"
	rekorAPIVersion  = "0.0.1"
)

// rekorPayload is the part of a Rekor log entry that its signed entry timestamp (SET)
// covers: Body is the base64 of the canonicalized entry, LogID the hex of the log's key ID.
type rekorPayload struct {
	Body           string
	IntegratedTime jsonInteger
	LogIndex       jsonInteger
	LogID          string
}

// verifiedEntry is a Rekor entry whose SET verified: its body and time are vouched for by
// a trusted Rekor key (but not yet bound to any signature).
type verifiedEntry struct {
	body           []byte
	integratedTime time.Time
}

// parseSETAnnotation parses a .sig layer's dev.sigstore.cosign/bundle annotation, which
// must have exactly the keys SignedEntryTimestamp and Payload, and Payload exactly body,
// integratedTime, logIndex and logID (signature/internal/rekor_set.go in containers/image).
func parseSETAnnotation(data []byte) (set []byte, p rekorPayload, err error) {
	var rawPayload json.RawMessage
	if err := strictjson.DecodeExact(data, map[string]any{
		"SignedEntryTimestamp": &set,
		"Payload":              &rawPayload,
	}); err != nil {
		return nil, rekorPayload{}, err
	}
	if err := strictjson.DecodeExact(rawPayload, map[string]any{
		"body":           &p.Body,
		"integratedTime": &p.IntegratedTime,
		"logIndex":       &p.LogIndex,
		"logID":          &p.LogID,
	}); err != nil {
		return nil, rekorPayload{}, strictjson.WithPath(".Payload", err)
	}
	return set, p, nil
}

// verifySETAnnotation verifies the bundle annotation of a .sig layer against rekorKeys.
func verifySETAnnotation(rekorKeys []*ecdsa.PublicKey, annotation string) (verifiedEntry, error) {
	set, p, err := parseSETAnnotation([]byte(annotation))
	if err != nil {
		return verifiedEntry{}, rejectf("invalid %s annotation: %w", AnnotationBundle, err)
	}
	return p.verify(rekorKeys, set)
}

// verify checks that set is a Rekor key's ECDSA signature over the SHA-256 of p's
// canonical form, then decodes the body.
func (p *rekorPayload) verify(rekorKeys []*ecdsa.PublicKey, set []byte) (verifiedEntry, error) {
	sum := sha256.Sum256(p.canonical())
	verified := false
	for _, key := range rekorKeys {
		if ecdsa.VerifyASN1(key, sum[:], set) {
			verified = true
			break
		}
	}
	if !verified {
		return verifiedEntry{}, rejectf("the Rekor signed entry timestamp does not verify with any configured Rekor public key")
	}
	body, err := base64.StdEncoding.DecodeString(p.Body)
	if err != nil {
		return verifiedEntry{}, rejectf("invalid base64 in the Rekor entry body: %w", err)
	}
	return verifiedEntry{body: body, integratedTime: time.Unix(p.IntegratedTime.value, 0)}, nil
}

// logBinding is what a Rekor entry must record to vouch for one signature.
type logBinding struct {
	kind string // kindHashedRekord or kindDSSE
	// verifierDER is the PKIX DER of the signing key, or the DER of its certificate.
	verifierDER []byte
	signature   []byte
	// dataSHA256 is, for hashedrekord, the SHA-256 the signature covers (of the payload, or
	// a bundle's message digest); for dsse, the SHA-256 of the envelope's payload.
	dataSHA256 []byte
}

// checkRekorBody checks that a verified entry body records exactly b.
func checkRekorBody(body []byte, b logBinding) error {
	var apiVersion, kind string
	var spec json.RawMessage
	if err := strictjson.DecodeExact(body, map[string]any{"apiVersion": &apiVersion, "kind": &kind, "spec": &spec}); err != nil {
		return rejectf("invalid Rekor entry body: %w", err)
	}
	if kind != b.kind {
		return rejectf("the Rekor entry is of kind %q, expected %q", kind, b.kind)
	}
	if apiVersion != rekorAPIVersion {
		return rejectf("unsupported Rekor %s entry version %q, expected %q", kind, apiVersion, rekorAPIVersion)
	}
	if kind == kindDSSE {
		return checkDSSESpec(spec, b)
	}
	return checkHashedRekordSpec(spec, b)
}

// checkHashedRekordSpec checks
// {"data":{"hash":{"algorithm":"sha256","value":<hex>}},"signature":{"content":<base64>,"publicKey":{"content":<base64 PEM>}}}.
func checkHashedRekordSpec(spec json.RawMessage, b logBinding) error {
	var data, sig, hash, publicKey json.RawMessage
	var sigContent, keyPEM []byte
	var algorithm, value string
	err := strictjson.DecodeExact(spec, map[string]any{"data": &data, "signature": &sig})
	if err == nil {
		err = strictjson.WithPath(".signature", strictjson.DecodeExact(sig, map[string]any{"content": &sigContent, "publicKey": &publicKey}))
	}
	if err == nil {
		err = strictjson.WithPath(".signature.publicKey", strictjson.DecodeExact(publicKey, map[string]any{"content": &keyPEM}))
	}
	if err == nil {
		err = strictjson.WithPath(".data", strictjson.DecodeExact(data, map[string]any{"hash": &hash}))
	}
	if err == nil {
		err = strictjson.WithPath(".data.hash", strictjson.DecodeExact(hash, map[string]any{"algorithm": &algorithm, "value": &value}))
	}
	if err != nil {
		return rejectf("invalid hashedrekord entry: %w", strictjson.WithPath(".spec", err))
	}
	if err := matchVerifier(keyPEM, b.verifierDER); err != nil {
		return err
	}
	if !bytes.Equal(sigContent, b.signature) {
		return rejectf("the signature recorded in the Rekor entry does not match the signature")
	}
	return matchHash("data.hash", algorithm, value, b.dataSHA256)
}

// checkDSSESpec checks a dsse 0.0.1 entry: {"envelopeHash":{...},"payloadHash":{...},
// "signatures":[{"signature":<base64>,"verifier":<base64 PEM>}]}. envelopeHash covers the
// envelope text as the client uploaded it, which a bundle does not preserve, so only its
// presence is checked; the payload hash, signature and verifier bind the entry.
func checkDSSESpec(spec json.RawMessage, b logBinding) error {
	var envelopeHash, payloadHash, signatures json.RawMessage
	var envAlg, envValue, payloadAlg, payloadValue string
	var sigs []struct{ signature, verifier []byte }
	err := strictjson.DecodeExact(spec, map[string]any{"envelopeHash": &envelopeHash, "payloadHash": &payloadHash, "signatures": &signatures})
	if err == nil {
		err = strictjson.WithPath(".envelopeHash", strictjson.DecodeExact(envelopeHash, map[string]any{"algorithm": &envAlg, "value": &envValue}))
	}
	if err == nil {
		err = strictjson.WithPath(".payloadHash", strictjson.DecodeExact(payloadHash, map[string]any{"algorithm": &payloadAlg, "value": &payloadValue}))
	}
	if err == nil {
		err = strictjson.WithPath(".signatures", strictjson.DecodeArray(signatures, func(_ int, raw json.RawMessage) error {
			var sig string
			var verifier []byte
			if err := strictjson.DecodeExact(raw, map[string]any{"signature": &sig, "verifier": &verifier}); err != nil {
				return err
			}
			decoded, err := base64.StdEncoding.DecodeString(sig)
			if err != nil {
				return strictjson.WithPath(".signature", err)
			}
			sigs = append(sigs, struct{ signature, verifier []byte }{decoded, verifier})
			return nil
		}))
	}
	if err != nil {
		return rejectf("invalid dsse entry: %w", strictjson.WithPath(".spec", err))
	}
	if envAlg != "sha256" {
		return rejectf("unexpected envelopeHash.algorithm %q in the Rekor entry", envAlg)
	}
	// cosign signs with one key, and the envelope carries one signature (checked by the caller).
	if len(sigs) != 1 {
		return rejectf("the Rekor dsse entry records %d signatures, expected 1", len(sigs))
	}
	if err := matchVerifier(sigs[0].verifier, b.verifierDER); err != nil {
		return err
	}
	if !bytes.Equal(sigs[0].signature, b.signature) {
		return rejectf("the signature recorded in the Rekor entry does not match the signature")
	}
	return matchHash("payloadHash", payloadAlg, payloadValue, b.dataSHA256)
}

// matchVerifier checks that the PEM recorded by Rekor is one block, with nothing after it,
// holding the same DER as want. As in containers/image, the PEM type is not compared.
func matchVerifier(recordedPEM, want []byte) error {
	block, rest := pem.Decode(recordedPEM)
	if block == nil {
		return rejectf("the public key recorded in the Rekor entry is not PEM")
	}
	if len(rest) != 0 {
		return rejectf("the public key recorded in the Rekor entry has trailing data")
	}
	if !bytes.Equal(block.Bytes, want) {
		return rejectf("the public key or certificate recorded in the Rekor entry is not the signer's")
	}
	return nil
}

func matchHash(field, algorithm, value string, want []byte) error {
	if algorithm != "sha256" {
		return rejectf("unexpected %s.algorithm %q in the Rekor entry, expected \"sha256\"", field, algorithm)
	}
	got, err := hex.DecodeString(value)
	if err != nil {
		return rejectf("invalid %s.value in the Rekor entry: %w", field, err)
	}
	if !bytes.Equal(got, want) {
		return rejectf("the hash recorded in the Rekor entry (%s) is not the hash of the signed data", field)
	}
	return nil
}

// singlePEMBlock returns the DER of data, which must be exactly one PEM block with nothing
// after it: Rekor logs the certificate annotation's PEM, and containers/image compares the
// two blocks byte for byte.
func singlePEMBlock(data []byte, what string) ([]byte, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, rejectf("the %s is not PEM", what)
	}
	if len(rest) != 0 {
		return nil, rejectf("the %s has data after its first PEM block", what)
	}
	return block.Bytes, nil
}
