package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pullgate/pullgate/policy/strictjson"
)

// requirement is one object of a requirement list.
type requirement interface {
	// typeName is the requirement's "type".
	typeName() string
	// needsSignatures reports whether evaluating it reads the image's signatures.
	needsSignatures() bool
	// alwaysDenies reports whether it denies every image (reject, signedBaseLayer).
	alwaysDenies() bool
	// evaluate decides for one image. An error means the decision could not be made
	// (the signatures could not be fetched); it wraps ErrIndeterminate.
	evaluate(ctx context.Context, ev *evaluation) (outcome, error)
	// load reads and parses the key material the requirement names, reading files
	// through files; path is its JSON path, for messages.
	load(path string, files *keyFiles) error
}

// outcome is a requirement's decision.
type outcome struct {
	allowed bool
	// reason says why it allowed or denied.
	reason string
	// verified is true when it allowed because a signature verified.
	verified bool
}

// The requirement types.
const (
	insecureAcceptAnythingType = "insecureAcceptAnything"
	rejectType                 = "reject"
	signedByType               = "signedBy"
	sigstoreSignedType         = "sigstoreSigned"
	signedBaseLayerType        = "signedBaseLayer"
)

// parseRequirements parses a requirement list: a non-empty JSON array of requirement
// objects. null and [] are errors, as in containers/image.
func parseRequirements(raw json.RawMessage) ([]requirement, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, errors.New("expected an array of requirements")
	}
	if len(items) == 0 {
		return nil, errors.New("a requirement list must not be empty")
	}
	reqs := make([]requirement, len(items))
	for i, item := range items {
		r, err := parseRequirement(item)
		if err != nil {
			return nil, strictjson.WithPath(strictjson.Index(i), err)
		}
		reqs[i] = r
	}
	return reqs, nil
}

func parseRequirement(raw json.RawMessage) (requirement, error) {
	o, typ, err := decodeTypedObject(raw)
	if err != nil {
		return nil, err
	}
	switch typ {
	case insecureAcceptAnythingType:
		if err := o.exactly("type"); err != nil {
			return nil, err
		}
		return prInsecureAcceptAnything{}, nil
	case rejectType:
		if err := o.exactly("type"); err != nil {
			return nil, err
		}
		return prReject{}, nil
	case signedByType:
		return parseSignedBy(o)
	case sigstoreSignedType:
		return parseSigstoreSigned(o)
	case signedBaseLayerType:
		if err := o.exactly("type", "baseLayerIdentity"); err != nil {
			return nil, err
		}
		// Parsed for its errors only: containers/image does not implement it.
		if _, err := parseIdentity(o.values["baseLayerIdentity"]); err != nil {
			return nil, strictjson.WithPath(".baseLayerIdentity", err)
		}
		return prSignedBaseLayer{}, nil
	}
	return nil, strictjson.WithPath(".type", fmt.Errorf("unknown requirement type %q", typ))
}

// parseSignedIdentity returns the signedIdentity member, or the default
// matchRepoDigestOrExact when it is absent. null is an error.
func parseSignedIdentity(o rawObject) (identityMatcher, error) {
	raw, ok := o.get("signedIdentity")
	if !ok {
		return matchRepoDigestOrExact{}, nil
	}
	m, err := parseIdentity(raw)
	if err != nil {
		return nil, strictjson.WithPath(".signedIdentity", err)
	}
	return m, nil
}

// prInsecureAcceptAnything accepts every image without looking at signatures.
type prInsecureAcceptAnything struct{}

func (prInsecureAcceptAnything) typeName() string             { return insecureAcceptAnythingType }
func (prInsecureAcceptAnything) needsSignatures() bool        { return false }
func (prInsecureAcceptAnything) alwaysDenies() bool           { return false }
func (prInsecureAcceptAnything) load(string, *keyFiles) error { return nil }

func (prInsecureAcceptAnything) evaluate(context.Context, *evaluation) (outcome, error) {
	return outcome{allowed: true, reason: "accepted without checking signatures"}, nil
}

// prReject rejects every image.
type prReject struct{}

func (prReject) typeName() string             { return rejectType }
func (prReject) needsSignatures() bool        { return false }
func (prReject) alwaysDenies() bool           { return true }
func (prReject) load(string, *keyFiles) error { return nil }

func (prReject) evaluate(_ context.Context, ev *evaluation) (outcome, error) {
	return outcome{reason: fmt.Sprintf("running image %s is rejected by policy", ev.img.Identity)}, nil
}

// prSignedBaseLayer parses but, as in containers/image, rejects every image.
type prSignedBaseLayer struct{}

func (prSignedBaseLayer) typeName() string             { return signedBaseLayerType }
func (prSignedBaseLayer) needsSignatures() bool        { return false }
func (prSignedBaseLayer) alwaysDenies() bool           { return true }
func (prSignedBaseLayer) load(string, *keyFiles) error { return nil }

func (prSignedBaseLayer) evaluate(context.Context, *evaluation) (outcome, error) {
	return outcome{reason: "signedBaseLayer is not implemented, so it rejects every image"}, nil
}
