package sigstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/policy/strictjson"
)

// What cosign v3 signs for an image (SPEC.md 5.5): an in-toto Statement in a DSSE envelope.
const (
	inTotoPayloadType       = "application/vnd.in-toto+json"
	inTotoStatementV1       = "https://in-toto.io/Statement/v1"
	cosignSignPredicateType = "https://sigstore.dev/cosign/sign/v1"
)

// dssePAE is the DSSE v1 pre-authentication encoding, the bytes a DSSE signature covers:
// "DSSEv1" SP len(type) SP type SP len(body) SP body.
func dssePAE(payloadType string, payload []byte) []byte {
	out := make([]byte, 0, len(payloadType)+len(payload)+32)
	out = append(out, "DSSEv1 "...)
	out = strconv.AppendInt(out, int64(len(payloadType)), 10)
	out = append(out, ' ')
	out = append(out, payloadType...)
	out = append(out, ' ')
	out = strconv.AppendInt(out, int64(len(payload)), 10)
	out = append(out, ' ')
	return append(out, payload...)
}

// parseStatementSubjects parses a cosign signing statement strictly and returns the
// sha256 digests of its subjects. Other digest algorithms are ignored; a statement with
// no sha256 subject is an error.
func parseStatementSubjects(data []byte) ([]digest.Digest, error) {
	var typ, predicateType string
	var subjects, predicate json.RawMessage
	keys, err := strictjson.DecodeObject(data, fieldsOf(map[string]any{
		"_type":         &typ,
		"subject":       &subjects,
		"predicateType": &predicateType,
		"predicate":     &predicate, // cosign's is empty; nothing in it is a claim here
	}))
	if err != nil {
		return nil, err
	}
	if typ != inTotoStatementV1 {
		return nil, fmt.Errorf("statement _type is %q, expected %q", typ, inTotoStatementV1)
	}
	if predicateType != cosignSignPredicateType {
		return nil, fmt.Errorf("statement predicateType is %q, expected %q", predicateType, cosignSignPredicateType)
	}
	if !has(keys, "subject") {
		return nil, errors.New("statement has no subject")
	}
	var out []digest.Digest
	err = strictjson.DecodeArray(subjects, func(i int, raw json.RawMessage) error {
		if i >= maxStatementSubjects {
			return fmt.Errorf("more than %d subjects", maxStatementSubjects)
		}
		var digests json.RawMessage
		// An in-toto ResourceDescriptor; only digest matters here.
		if err := decodeOptional(raw, map[string]any{
			"name": new(string), "uri": new(string), "digest": &digests, "content": new(json.RawMessage),
			"downloadLocation": new(string), "mediaType": new(string), "annotations": new(json.RawMessage),
		}); err != nil {
			return err
		}
		var hexDigest *string
		_, err := strictjson.DecodeObject(digests, func(alg string) any {
			if alg == "sha256" {
				hexDigest = new(string)
				return hexDigest
			}
			return new(string)
		})
		if err != nil {
			return strictjson.WithPath(".digest", err)
		}
		if hexDigest == nil {
			return nil
		}
		d := digest.NewDigestFromEncoded(digest.SHA256, *hexDigest)
		if err := d.Validate(); err != nil {
			return strictjson.WithPath(".digest.sha256", err)
		}
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, strictjson.WithPath(".subject", err)
	}
	if len(out) == 0 {
		return nil, errors.New("statement has no sha256 subject digest")
	}
	return out, nil
}
