package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
)

// Manifest media types that decide how a manifest's digest is computed.
const (
	mediaTypeDockerSchema2 = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerList    = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeOCIManifest   = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeOCIIndex      = "application/vnd.oci.image.index.v1+json"
)

// manifestMatchesDigest reports whether manifest has the digest signed, as
// containers/image manifest.MatchesDigest decides: the sha256 of the manifest (only
// sha256: a signed sha512 digest never matches), where a signed Docker schema1 manifest
// is hashed without its JWS signatures (the libtrust payload). An error means the digest
// could not be computed (a schema1 manifest with a malformed signature section).
func manifestMatchesDigest(manifest []byte, signed digest.Digest) (bool, error) {
	actual, err := manifestDigest(manifest)
	if err != nil {
		return false, err
	}
	return actual == signed, nil
}

func manifestDigest(manifest []byte) (digest.Digest, error) {
	if isSignedSchema1(manifest) {
		payload, err := schema1Payload(manifest)
		if err != nil {
			return "", fmt.Errorf("schema1 signatures: %w", err)
		}
		manifest = payload
	}
	sum := sha256.Sum256(manifest)
	return digest.NewDigestFromBytes(digest.SHA256, sum[:]), nil
}

// isSignedSchema1 is containers/image GuessMIMEType(m) == DockerV2Schema1SignedMediaType:
// encoding/json semantics (case-insensitive member names, last duplicate wins), a media
// type that is not one of the four schema2/OCI types, schemaVersion 1 and a non-null
// "signatures" member.
func isSignedSchema1(manifest []byte) bool {
	var meta struct {
		MediaType     string `json:"mediaType"`
		SchemaVersion int    `json:"schemaVersion"`
		Signatures    any    `json:"signatures"`
	}
	if err := json.Unmarshal(manifest, &meta); err != nil {
		return false
	}
	switch meta.MediaType {
	case mediaTypeDockerSchema2, mediaTypeDockerList, mediaTypeOCIManifest, mediaTypeOCIIndex:
		return false
	}
	return meta.SchemaVersion == 1 && meta.Signatures != nil
}

// schema1Payload reconstructs the JWS payload of a signed schema1 manifest as libtrust's
// ParsePrettySignature(manifest, "signatures") does: the first formatLength bytes of the
// manifest followed by formatTail, both taken from the signatures' protected headers.
// Every check libtrust makes is made here; where libtrust would panic (no header, a
// negative length) this returns an error.
func schema1Payload(manifest []byte) ([]byte, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(manifest, &members); err != nil {
		return nil, fmt.Errorf("error unmarshalling content: %w", err)
	}
	sigMessage, ok := members["signatures"]
	if !ok {
		return nil, errors.New("missing signature key")
	}
	var blocks []struct {
		Header *struct {
			JWK       json.RawMessage `json:"jwk"`
			Algorithm string          `json:"alg"`
			Chain     []string        `json:"x5c"`
		} `json:"header"`
		Signature string `json:"signature"`
		Protected string `json:"protected"`
	}
	if err := json.Unmarshal(sigMessage, &blocks); err != nil {
		return nil, fmt.Errorf("error unmarshalling signatures: %w", err)
	}
	formatLength := 0
	var formatTail []byte
	for _, b := range blocks {
		protectedBytes, err := joseBase64URLDecode(b.Protected)
		if err != nil {
			return nil, fmt.Errorf("base64 decode error: %w", err)
		}
		var protected map[string]any
		if err := json.Unmarshal(protectedBytes, &protected); err != nil {
			return nil, fmt.Errorf("error unmarshalling protected header: %w", err)
		}
		length, ok := protected["formatLength"].(float64)
		if !ok {
			return nil, errors.New("missing formatted length")
		}
		encodedTail, ok := protected["formatTail"].(string)
		if !ok {
			return nil, errors.New("missing formatted tail")
		}
		tail, err := joseBase64URLDecode(encodedTail)
		if err != nil {
			return nil, fmt.Errorf("base64 decode error on tail: %w", err)
		}
		if length < 0 || length > float64(len(manifest)) {
			return nil, errors.New("invalid format length")
		}
		l := int(length) // truncates like libtrust's int(float64)
		if formatLength == 0 {
			formatLength = l
		} else if formatLength != l {
			return nil, errors.New("conflicting format length")
		}
		if len(formatTail) == 0 {
			formatTail = tail
		} else if !bytes.Equal(formatTail, tail) {
			return nil, errors.New("conflicting format tail")
		}
		if b.Header == nil {
			return nil, errors.New("missing signature header")
		}
		if b.Header.JWK != nil {
			if err := checkJWK(b.Header.JWK); err != nil {
				return nil, fmt.Errorf("error unmarshalling public key: %w", err)
			}
		}
	}
	payload := make([]byte, 0, formatLength+len(formatTail))
	payload = append(payload, manifest[:formatLength]...)
	return append(payload, formatTail...), nil
}
