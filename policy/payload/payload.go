// Package payload parses the JSON payload that both simple signing (OpenPGP) and cosign sign:
//
//	{"critical": {"type": "...", "image": {"docker-manifest-digest": "sha256:..."},
//	              "identity": {"docker-reference": "registry.example/ns/app:1"}},
//	 "optional": {...}}
//
// Parsing is strict as in containers/image (signature/simple.go,
// internal/signature/sigstore_payload.go): exact keys, no duplicates, the exact type string.
// A payload is only parsed after its cryptographic signature has been verified; until its
// digest and identity have been checked by the caller it is still untrusted.
package payload

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/policy/strictjson"
)

// The critical.type values.
const (
	TypeSimpleSigning = "atomic container signature"
	TypeCosign        = "cosign container image signature"
)

// Untrusted holds the claims of a payload whose signature verified but whose claims have
// not yet been compared with the image being evaluated.
type Untrusted struct {
	// ManifestDigest is critical.image.docker-manifest-digest; it parsed as a digest.
	ManifestDigest digest.Digest
	// DockerReference is critical.identity.docker-reference, unparsed: an unparsable
	// reference does not make the payload invalid, it just matches nothing.
	DockerReference string
	// Creator and Timestamp are from optional, when present.
	Creator   string
	Timestamp *int64
}

// Options selects the payload flavour.
type Options struct {
	// Type is the required critical.type.
	Type string
	// AllowNullOptional accepts "optional": null (cosign writes it when no annotations were
	// given); simple signing requires an object.
	AllowNullOptional bool
}

// ErrInvalid is wrapped by every parse error.
var ErrInvalid = errors.New("invalid signature payload")

// Parse parses a payload strictly.
func Parse(data []byte, opts Options) (Untrusted, error) {
	var (
		out                Untrusted
		critical, optional json.RawMessage
	)
	err := strictjson.DecodeExact(data, map[string]any{"critical": &critical, "optional": &optional})
	if err == nil {
		err = parseCritical(critical, opts.Type, &out)
	}
	if err == nil {
		err = strictjson.WithPath(".optional", parseOptional(optional, opts.AllowNullOptional, &out))
	}
	if err != nil {
		return Untrusted{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return out, nil
}

func parseCritical(raw json.RawMessage, wantType string, out *Untrusted) error {
	var typ string
	var image, identity json.RawMessage
	if err := strictjson.DecodeExact(raw, map[string]any{"type": &typ, "image": &image, "identity": &identity}); err != nil {
		return strictjson.WithPath(".critical", err)
	}
	if typ != wantType {
		return strictjson.WithPath(".critical.type", fmt.Errorf("unexpected type %q, want %q", typ, wantType))
	}
	var d string
	if err := strictjson.DecodeExact(image, map[string]any{"docker-manifest-digest": &d}); err != nil {
		return strictjson.WithPath(".critical.image", err)
	}
	parsed, err := digest.Parse(d)
	if err != nil {
		return strictjson.WithPath(`.critical.image["docker-manifest-digest"]`, err)
	}
	out.ManifestDigest = parsed
	if err := strictjson.DecodeExact(identity, map[string]any{"docker-reference": &out.DockerReference}); err != nil {
		return strictjson.WithPath(".critical.identity", err)
	}
	return nil
}

func parseOptional(raw json.RawMessage, allowNull bool, out *Untrusted) error {
	if strictjson.IsNull(raw) {
		if allowNull {
			return nil
		}
		return errors.New("must be an object, not null")
	}
	// creator and timestamp are decoded with encoding/json's own rules, as containers/image
	// does: null leaves them at their zero value, and the timestamp is read as a float64
	// (so 1e9 is accepted) that must hold an integral value.
	var creator, timestamp json.RawMessage
	keys, err := strictjson.DecodeObject(raw, func(key string) any {
		switch key {
		case "creator":
			return &creator
		case "timestamp":
			return &timestamp
		}
		return new(json.RawMessage) // other optional keys are free-form and ignored
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		switch k {
		case "creator":
			var c string
			if err := json.Unmarshal(creator, &c); err != nil {
				return strictjson.WithPath(".creator", errors.New("must be a string"))
			}
			out.Creator = c
		case "timestamp":
			var f float64
			if err := json.Unmarshal(timestamp, &f); err != nil {
				return strictjson.WithPath(".timestamp", errors.New("must be a number"))
			}
			ts := int64(f)
			if float64(ts) != f {
				return strictjson.WithPath(".timestamp", fmt.Errorf("%v is not an integer", f))
			}
			out.Timestamp = &ts
		}
	}
	return nil
}
