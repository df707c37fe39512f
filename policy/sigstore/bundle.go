package sigstore

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pullgate/pullgate/policy/strictjson"
)

// A Sigstore bundle is protobuf (sigstore/protobuf-specs, sigstore_bundle.proto) written
// as protojson: lowerCamelCase keys, int64 as strings, bytes as base64, default values
// omitted. It is parsed here by hand, strictly: unknown and duplicate keys are errors, and
// so are two members of a oneof. Parts that are carried but not verified offline
// (inclusion proofs, RFC 3161 timestamps) must be well-formed JSON and are otherwise ignored.

// Bundle media types, by minor version (sigstore-go pkg/bundle getBundleVersion).
var bundleMediaTypes = map[string]int{
	"application/vnd.dev.sigstore.bundle+json;version=0.1": 1,
	"application/vnd.dev.sigstore.bundle+json;version=0.2": 2,
	"application/vnd.dev.sigstore.bundle+json;version=0.3": 3,
	"application/vnd.dev.sigstore.bundle.v0.3+json":        3,
}

// untrustedBundle is a parsed bundle, nothing of it verified.
type untrustedBundle struct {
	minorVersion int
	material     bundleMaterial
	// Exactly one of these is set.
	messageSignature *messageSignature
	envelope         *dsseEnvelope
}

// bundleMaterial is verificationMaterial.
type bundleMaterial struct {
	// certificates is the leaf then the rest of x509CertificateChain, or the one
	// certificate; empty for a publicKey hint (which names the key but is not trusted).
	certificates [][]byte
	tlogEntries  []tlogEntry
}

// tlogEntry is a TransparencyLogEntry.
type tlogEntry struct {
	logIndex             int64
	logKeyID             []byte
	kind, version        string
	integratedTime       int64
	signedEntryTimestamp []byte // nil when the entry has no inclusion promise
	canonicalizedBody    []byte
}

type messageSignature struct {
	digestAlgorithm string // a HashAlgorithm enum name, e.g. SHA2_256
	digest          []byte // nil when messageDigest is absent
	signature       []byte
}

type dsseEnvelope struct {
	payload     []byte
	payloadType string
	signatures  [][]byte
}

// parseBundle parses a bundle strictly.
func parseBundle(data []byte) (*untrustedBundle, error) {
	var b untrustedBundle
	var mediaType string
	var material, msgSig, env json.RawMessage
	keys, err := strictjson.DecodeObject(data, fieldsOf(map[string]any{
		"mediaType":            &mediaType,
		"verificationMaterial": &material,
		"messageSignature":     &msgSig,
		"dsseEnvelope":         &env,
	}))
	if err != nil {
		return nil, err
	}
	version, ok := bundleMediaTypes[mediaType]
	if !ok {
		return nil, fmt.Errorf("unsupported bundle media type %q", mediaType)
	}
	b.minorVersion = version
	if !has(keys, "verificationMaterial") {
		return nil, errors.New("missing verificationMaterial")
	}
	if b.material, err = parseMaterial(material, version); err != nil {
		return nil, strictjson.WithPath(".verificationMaterial", err)
	}
	switch {
	case has(keys, "messageSignature") && has(keys, "dsseEnvelope"):
		return nil, errors.New("both messageSignature and dsseEnvelope are set")
	case has(keys, "messageSignature"):
		b.messageSignature, err = parseMessageSignature(msgSig)
		err = strictjson.WithPath(".messageSignature", err)
	case has(keys, "dsseEnvelope"):
		b.envelope, err = parseEnvelope(env)
		err = strictjson.WithPath(".dsseEnvelope", err)
	default:
		return nil, errors.New("neither messageSignature nor dsseEnvelope is set")
	}
	if err != nil {
		return nil, err
	}
	return &b, nil
}

func parseMaterial(data json.RawMessage, version int) (bundleMaterial, error) {
	var m bundleMaterial
	var publicKey, chain, certificate, tlog, timestamps json.RawMessage
	keys, err := strictjson.DecodeObject(data, fieldsOf(map[string]any{
		"publicKey":                 &publicKey,
		"x509CertificateChain":      &chain,
		"certificate":               &certificate,
		"tlogEntries":               &tlog,
		"timestampVerificationData": &timestamps, // RFC 3161 timestamps: not verified
	}))
	if err != nil {
		return m, err
	}
	switch countPresent(keys, "publicKey", "x509CertificateChain", "certificate") {
	case 0:
		return m, errors.New("none of publicKey, x509CertificateChain and certificate is set")
	case 1:
	default:
		return m, errors.New("more than one of publicKey, x509CertificateChain and certificate is set")
	}
	switch {
	case has(keys, "publicKey"):
		var hint string
		err = strictjson.WithPath(".publicKey", decodeOptional(publicKey, map[string]any{"hint": &hint}))
	case has(keys, "certificate"):
		var cert []byte
		cert, err = parseCertificateMessage(certificate)
		err = strictjson.WithPath(".certificate", err)
		m.certificates = [][]byte{cert}
	default:
		if version >= 3 {
			return m, errors.New("x509CertificateChain is not allowed in a v0.3 bundle (use certificate)")
		}
		m.certificates, err = parseCertificateChain(chain)
		err = strictjson.WithPath(".x509CertificateChain", err)
	}
	if err != nil {
		return m, err
	}
	if has(keys, "tlogEntries") {
		err = strictjson.DecodeArray(tlog, func(i int, raw json.RawMessage) error {
			if i >= maxTlogEntries {
				return fmt.Errorf("more than %d transparency log entries", maxTlogEntries)
			}
			e, err := parseTlogEntry(raw)
			m.tlogEntries = append(m.tlogEntries, e)
			return err
		})
		if err != nil {
			return m, strictjson.WithPath(".tlogEntries", err)
		}
	}
	return m, nil
}

func parseCertificateMessage(data json.RawMessage) ([]byte, error) {
	var raw pbBytes
	if err := strictjson.DecodeExact(data, map[string]any{"rawBytes": &raw}); err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, errors.New("empty rawBytes")
	}
	return raw, nil
}

func parseCertificateChain(data json.RawMessage) ([][]byte, error) {
	var list json.RawMessage
	if err := strictjson.DecodeExact(data, map[string]any{"certificates": &list}); err != nil {
		return nil, err
	}
	var certs [][]byte
	err := strictjson.WithPath(".certificates", strictjson.DecodeArray(list, func(i int, raw json.RawMessage) error {
		if i >= maxChainCertificates {
			return fmt.Errorf("more than %d certificates", maxChainCertificates)
		}
		cert, err := parseCertificateMessage(raw)
		certs = append(certs, cert)
		return err
	}))
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("empty certificates")
	}
	return certs, nil
}

func parseTlogEntry(data json.RawMessage) (tlogEntry, error) {
	var e tlogEntry
	var logIndex, integratedTime pbInt64
	var logID, kindVersion, promise, proof json.RawMessage
	var body pbBytes
	keys, err := strictjson.DecodeObject(data, fieldsOf(map[string]any{
		"logIndex":          &logIndex,
		"logId":             &logID,
		"kindVersion":       &kindVersion,
		"integratedTime":    &integratedTime,
		"inclusionPromise":  &promise,
		"inclusionProof":    &proof, // a Merkle inclusion proof: not verified offline
		"canonicalizedBody": &body,
	}))
	if err != nil {
		return e, err
	}
	e.logIndex, e.integratedTime, e.canonicalizedBody = int64(logIndex), int64(integratedTime), body
	if !has(keys, "logId") || !has(keys, "kindVersion") || !has(keys, "canonicalizedBody") {
		return e, errors.New("logId, kindVersion and canonicalizedBody are required")
	}
	var keyID pbBytes
	if err := strictjson.DecodeExact(logID, map[string]any{"keyId": &keyID}); err != nil {
		return e, strictjson.WithPath(".logId", err)
	}
	e.logKeyID = keyID
	if err := strictjson.DecodeExact(kindVersion, map[string]any{"kind": &e.kind, "version": &e.version}); err != nil {
		return e, strictjson.WithPath(".kindVersion", err)
	}
	if has(keys, "inclusionPromise") {
		var set pbBytes
		if err := strictjson.DecodeExact(promise, map[string]any{"signedEntryTimestamp": &set}); err != nil {
			return e, strictjson.WithPath(".inclusionPromise", err)
		}
		e.signedEntryTimestamp = set
		if e.signedEntryTimestamp == nil {
			e.signedEntryTimestamp = []byte{}
		}
	}
	return e, nil
}

func parseMessageSignature(data json.RawMessage) (*messageSignature, error) {
	var s messageSignature
	var digestMsg json.RawMessage
	var sig pbBytes
	keys, err := strictjson.DecodeObject(data, fieldsOf(map[string]any{"messageDigest": &digestMsg, "signature": &sig}))
	if err != nil {
		return nil, err
	}
	s.signature = sig
	if has(keys, "messageDigest") {
		var digest pbBytes
		err := decodeOptional(digestMsg, map[string]any{"algorithm": &s.digestAlgorithm, "digest": &digest})
		if err != nil {
			return nil, strictjson.WithPath(".messageDigest", err)
		}
		s.digest = digest
		if s.digest == nil {
			s.digest = []byte{}
		}
	}
	return &s, nil
}

func parseEnvelope(data json.RawMessage) (*dsseEnvelope, error) {
	var env dsseEnvelope
	var payload pbBytes
	var sigs json.RawMessage
	keys, err := strictjson.DecodeObject(data, fieldsOf(map[string]any{"payload": &payload, "payloadType": &env.payloadType, "signatures": &sigs}))
	if err != nil {
		return nil, err
	}
	env.payload = payload
	if has(keys, "signatures") {
		err := strictjson.DecodeArray(sigs, func(i int, raw json.RawMessage) error {
			var sig pbBytes
			var keyID string
			if err := decodeOptional(raw, map[string]any{"sig": &sig, "keyid": &keyID}); err != nil {
				return err
			}
			env.signatures = append(env.signatures, sig)
			return nil
		})
		if err != nil {
			return nil, strictjson.WithPath(".signatures", err)
		}
	}
	return &env, nil
}

// pbBytes is a protojson bytes field: base64, standard or URL alphabet, padded or not.
type pbBytes []byte

func (b *pbBytes) UnmarshalJSON(raw []byte) error {
	var s string
	if err := strictjson.Unmarshal(raw, &s); err != nil {
		return err
	}
	enc := base64.StdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	if len(s)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	decoded, err := enc.DecodeString(s)
	if err != nil {
		return fmt.Errorf("invalid base64: %w", err)
	}
	*b = decoded
	return nil
}

// pbInt64 is a protojson int64 field: a decimal integer, quoted (as protojson writes it) or not.
type pbInt64 int64

func (n *pbInt64) UnmarshalJSON(raw []byte) error {
	text := string(raw)
	if strings.HasPrefix(text, `"`) {
		if err := strictjson.Unmarshal(raw, &text); err != nil {
			return err
		}
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return fmt.Errorf("expected an int64, got %s", raw)
	}
	*n = pbInt64(v)
	return nil
}

// fieldsOf turns a map of destinations into a strictjson.Fields (unknown keys are errors).
func fieldsOf(m map[string]any) strictjson.Fields {
	return func(key string) any { return m[key] }
}

// decodeOptional decodes an object whose keys are all optional (proto3 omits defaults).
func decodeOptional(data json.RawMessage, m map[string]any) error {
	_, err := strictjson.DecodeObject(data, fieldsOf(m))
	return err
}

func has(keys []string, key string) bool { return slices.Contains(keys, key) }

func countPresent(keys []string, names ...string) int {
	n := 0
	for _, name := range names {
		if has(keys, name) {
			n++
		}
	}
	return n
}
