package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
)

// ErrUnrecognizedSignature is wrapped by ParseSignatureBlob errors. containers/image
// treats such a blob as a failure of the whole signature fetch, not as one bad signature:
// sources should return the error (making the evaluation indeterminate), not skip it.
var ErrUnrecognizedSignature = errors.New("unrecognized signature format")

// The names of containers/image's "new format" signature blobs.
const (
	blobFormatSimpleSigning = "simple-signing"
	blobFormatSigstoreJSON  = "sigstore-json"
)

// ParseSignatureBlob recognises one stored signature (a lookaside signature-N file or
// body, a dir: signature file) by its first byte, as containers/image
// (internal/signature/signature.go FromBlob) does (SPEC 2.4):
//   - an OpenPGP packet tag of a compressed-data, one-pass-signature or signature packet
//     (0xA0-0xA3, 0xC8, 0x90-0x92, 0xC4, 0x88-0x8B, 0xC2, and containers/image's 0x3D) is
//     a raw simple-signing signature;
//   - 0x00 starts the newer format: an ASCII format name, '\n', then the data, where the
//     name is "simple-signing" (raw OpenPGP follows) or "sigstore-json" (a JSON object with
//     mimeType, base64 payload and annotations);
//   - anything else (ASCII armor's '-', an HTML page, an empty blob) is an error.
//
// The returned Signature owns its data (data is not retained).
func ParseSignatureBlob(data []byte) (Signature, error) {
	if len(data) == 0 {
		return Signature{}, fmt.Errorf("%w: empty signature blob", ErrUnrecognizedSignature)
	}
	switch data[0] {
	case 0xA0, 0xA1, 0xA2, 0xA3, 0xC8, // compressed data
		0x90, 0x91, 0x92, 0x3D, 0xC4, // one-pass signature (0x3D, not 0x93, as containers/image has it)
		0x88, 0x89, 0x8A, 0x8B, 0xC2: // signature
		return Signature{Format: FormatSimpleSigning, Data: bytes.Clone(data)}, nil
	case 0x00:
		name, chunk, found := bytes.Cut(data[1:], []byte{'\n'})
		if !found {
			return Signature{}, fmt.Errorf("%w: missing newline after the format name", ErrUnrecognizedSignature)
		}
		for _, b := range name {
			if b < 32 || b >= 0x7F {
				return Signature{}, fmt.Errorf("%w: non-ASCII byte %#x in the format name", ErrUnrecognizedSignature, b)
			}
		}
		switch string(name) {
		case blobFormatSimpleSigning:
			return Signature{Format: FormatSimpleSigning, Data: bytes.Clone(chunk)}, nil
		case blobFormatSigstoreJSON:
			return parseSigstoreJSON(chunk)
		}
		return Signature{}, fmt.Errorf("%w %q", ErrUnrecognizedSignature, name)
	}
	return Signature{}, fmt.Errorf("%w, starting with byte %#x", ErrUnrecognizedSignature, data[0])
}

// parseSigstoreJSON decodes containers/image's stored form of one cosign signature. It is
// decoded with plain encoding/json, as containers/image does: nothing in it is trusted, and
// the payload and annotations are verified later.
func parseSigstoreJSON(chunk []byte) (Signature, error) {
	var untrusted struct {
		MIMEType    string            `json:"mimeType"`
		Payload     []byte            `json:"payload"`
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(chunk, &untrusted); err != nil {
		return Signature{}, fmt.Errorf("%w: invalid sigstore-json signature: %w", ErrUnrecognizedSignature, err)
	}
	annotations := maps.Clone(untrusted.Annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	return Signature{
		Format:      FormatCosign,
		MIMEType:    untrusted.MIMEType,
		Data:        untrusted.Payload,
		Annotations: annotations,
	}, nil
}
