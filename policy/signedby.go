package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pullgate/pullgate/policy/simplesign"
	"github.com/pullgate/pullgate/policy/strictjson"
)

// The signedBy keyType values containers/image accepts. Only GPGKeys is implemented there;
// the others parse and then reject every signature.
const keyTypeGPGKeys = "GPGKeys"

var validKeyTypes = map[string]bool{
	keyTypeGPGKeys:     true,
	"signedByGPGKeys":  true,
	"X509Certificates": true,
	"signedByX509CAs":  true,
}

// prSignedBy requires a simple-signing (OpenPGP) signature by one of the listed keys.
type prSignedBy struct {
	keyType string
	// Exactly one key source is set: keyPath (non-empty), keyPaths (non-nil, possibly
	// empty: then nothing is trusted) or keyData (non-nil).
	keyPath  string
	keyPaths []string
	keyData  []byte
	identity identityMatcher

	// keyring holds the loaded keys.
	keyring *simplesign.Keyring
}

func parseSignedBy(o rawObject) (*prSignedBy, error) {
	if err := o.only("type", "keyType", "keyPath", "keyPaths", "keyData", "signedIdentity"); err != nil {
		return nil, err
	}
	pr := &prSignedBy{}
	raw, ok := o.get("keyType")
	if !ok {
		return nil, errors.New(`missing required key "keyType"`)
	}
	keyType, err := decodeString(raw)
	if err == nil && !validKeyTypes[keyType] {
		err = fmt.Errorf("unrecognized keyType value %q", keyType)
	}
	if err != nil {
		return nil, strictjson.WithPath(".keyType", err)
	}
	pr.keyType = keyType
	if pr.identity, err = parseSignedIdentity(o); err != nil {
		return nil, err
	}
	var present []string
	for _, k := range []string{"keyPath", "keyPaths", "keyData"} {
		if o.has(k) {
			present = append(present, k)
		}
	}
	switch len(present) {
	case 0:
		return nil, errors.New("exactly one of keyPath, keyPaths and keyData must be specified, none is")
	case 1:
	default:
		return nil, fmt.Errorf("exactly one of keyPath, keyPaths and keyData must be specified, found %s", strings.Join(present, " and "))
	}
	key := present[0]
	raw = o.values[key]
	switch key {
	case "keyPath":
		pr.keyPath, err = decodeString(raw)
		if err == nil && pr.keyPath == "" {
			err = errors.New("must not be empty")
		}
	case "keyPaths":
		pr.keyPaths, err = decodeStrings(raw)
		if err == nil && pr.keyPaths == nil {
			err = errors.New("must be an array, not null")
		}
	case "keyData":
		pr.keyData, err = decodeBytes(raw)
		if err == nil && pr.keyData == nil {
			err = errors.New("must be a base64 string, not null")
		}
	}
	if err != nil {
		return nil, strictjson.WithPath(strictjson.Key(key), err)
	}
	return pr, nil
}

func (pr *prSignedBy) typeName() string      { return signedByType }
func (pr *prSignedBy) needsSignatures() bool { return true }
func (pr *prSignedBy) alwaysDenies() bool    { return false }

// load reads and parses the keyrings. For keyTypes other than GPGKeys, which reject every
// signature anyway, the files are only read (they are not OpenPGP).
func (pr *prSignedBy) load(path string, files *keyFiles) error {
	type blob struct {
		path string // JSON path
		file string
		data []byte
	}
	var blobs []blob
	switch {
	case pr.keyPath != "":
		blobs = append(blobs, blob{path: path + ".keyPath", file: pr.keyPath})
	case pr.keyPaths != nil:
		for i, f := range pr.keyPaths {
			blobs = append(blobs, blob{path: path + ".keyPaths" + strictjson.Index(i), file: f})
		}
	default:
		blobs = append(blobs, blob{path: path + ".keyData", data: pr.keyData})
	}
	var rings []*simplesign.Keyring
	for _, b := range blobs {
		data, what := b.data, "keyData"
		if b.file != "" || b.data == nil {
			var err error
			if data, err = files.read(b.file); err != nil {
				return &LoadError{Path: b.path, Err: err}
			}
			what = fmt.Sprintf("key file %q", b.file)
		}
		if pr.keyType != keyTypeGPGKeys {
			continue
		}
		ring, err := simplesign.ParseKeyring(data)
		if err != nil {
			return &LoadError{Path: b.path, Err: fmt.Errorf("%s: %w", what, err)}
		}
		rings = append(rings, ring)
	}
	pr.keyring = simplesign.JoinKeyrings(rings...)
	return nil
}

func (pr *prSignedBy) evaluate(ctx context.Context, ev *evaluation) (outcome, error) {
	sigs, err := ev.signatures(ctx)
	if err != nil {
		return outcome{}, err
	}
	var rejections []string
	for i, sig := range sigs {
		if sig.Format != FormatSimpleSigning {
			continue // signedBy does not see sigstore signatures
		}
		fingerprint, err := pr.check(ev, sig)
		if err == nil {
			return outcome{allowed: true, verified: true,
				reason: fmt.Sprintf("%s is signed by key %s", signatureLabel(i, sig), fingerprint)}, nil
		}
		rejections = append(rejections, signatureLabel(i, sig)+": "+err.Error())
	}
	return outcome{reason: summarizeRejections(rejections, "")}, nil
}

// check verifies one simple-signing signature completely and returns the trusted key's
// fingerprint, or why the signature is rejected. The order follows containers/image:
// cryptography and key, payload, manifest digest, identity.
func (pr *prSignedBy) check(ev *evaluation, sig Signature) (string, error) {
	if pr.keyType != keyTypeGPGKeys {
		return "", fmt.Errorf("unimplemented keyType value %q", pr.keyType)
	}
	if pr.keyring == nil || pr.keyring.Len() == 0 {
		return "", errors.New("no public keys imported")
	}
	v, err := pr.keyring.Verify(sig.Data, ev.now)
	if err != nil {
		return "", err
	}
	if err := ev.checkDigest(v.Payload.ManifestDigest); err != nil {
		return "", err
	}
	if !pr.identity.matches(ev.img.Identity, v.Payload.DockerReference) {
		return "", fmt.Errorf("signature for identity %q is not accepted (%s)", v.Payload.DockerReference, pr.identity)
	}
	return v.KeyFingerprint, nil
}

// summarizeRejections is the denial reason of a signature-checking requirement: no
// signature at all, the one rejection, or all of them.
func summarizeRejections(rejections []string, skipped string) string {
	switch len(rejections) {
	case 0:
		return "a signature was required, but no signature exists" + skipped
	case 1:
		return rejections[0]
	}
	return "none of the signatures were accepted: " + strings.Join(rejections, "; ")
}

// signatureLabel names a signature in messages: its 1-based position among the image's
// signatures, and where it was found.
func signatureLabel(i int, sig Signature) string {
	if sig.Origin == "" {
		return fmt.Sprintf("signature %d", i+1)
	}
	return fmt.Sprintf("signature %d (%s)", i+1, sig.Origin)
}
