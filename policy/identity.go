package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/distribution/reference"

	"github.com/pullgate/pullgate/policy/strictjson"
)

// identityMatcher is a signedIdentity object: it decides whether the docker-reference a
// verified signature claims is acceptable for the image being evaluated
// (containers/image signature/policy_reference_match.go).
type identityMatcher interface {
	// matches reports whether signed, the untrusted docker-reference string from a
	// verified signature, is accepted for intended, the image's policy identity (always
	// tagged or digested).
	matches(intended reference.Named, signed string) bool
	// String names the matcher for messages.
	String() string
}

// The identity types.
const (
	matchExactType             = "matchExact"
	matchRepoDigestOrExactType = "matchRepoDigestOrExact"
	matchRepositoryType        = "matchRepository"
	exactReferenceType         = "exactReference"
	exactRepositoryType        = "exactRepository"
	remapIdentityType          = "remapIdentity"
)

// parseIdentity parses a signedIdentity (or baseLayerIdentity) object.
func parseIdentity(raw json.RawMessage) (identityMatcher, error) {
	o, typ, err := decodeTypedObject(raw)
	if err != nil {
		return nil, err
	}
	switch typ {
	case matchExactType, matchRepoDigestOrExactType, matchRepositoryType:
		if err := o.exactly("type"); err != nil {
			return nil, err
		}
		switch typ {
		case matchExactType:
			return matchExact{}, nil
		case matchRepoDigestOrExactType:
			return matchRepoDigestOrExact{}, nil
		}
		return matchRepository{}, nil
	case exactReferenceType:
		ref, s, err := parseNamedMember(o, "dockerReference", "reference")
		if err != nil {
			return nil, err
		}
		if reference.IsNameOnly(ref) {
			return nil, strictjson.WithPath(".dockerReference", fmt.Errorf("%q contains neither a tag nor a digest", s))
		}
		return exactReference{ref: ref}, nil
	case exactRepositoryType:
		ref, _, err := parseNamedMember(o, "dockerRepository", "repository")
		if err != nil {
			return nil, err
		}
		return exactRepository{ref: ref}, nil
	case remapIdentityType:
		if err := o.exactly("type", "prefix", "signedPrefix"); err != nil {
			return nil, err
		}
		var m remapIdentity
		for _, f := range []struct {
			key string
			dst *string
		}{{"prefix", &m.prefix}, {"signedPrefix", &m.signedPrefix}} {
			s, err := decodeString(o.values[f.key])
			if err == nil {
				err = validateRemapPrefix(s)
			}
			if err != nil {
				return nil, strictjson.WithPath(strictjson.Key(f.key), err)
			}
			*f.dst = s
		}
		return m, nil
	}
	return nil, strictjson.WithPath(".type", fmt.Errorf("unknown identity type %q", typ))
}

// parseNamedMember parses the one member besides "type" of an exactReference or
// exactRepository object, key, as a reference; what names it in the error. It returns the
// string too, for the caller's own checks.
func parseNamedMember(o rawObject, key, what string) (reference.Named, string, error) {
	if err := o.exactly("type", key); err != nil {
		return nil, "", err
	}
	s, err := decodeString(o.values[key])
	if err != nil {
		return nil, "", strictjson.WithPath("."+key, err)
	}
	ref, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return nil, "", strictjson.WithPath("."+key, fmt.Errorf("invalid %s %q: %w", what, s, err))
	}
	return ref, s, nil
}

// decodeTypedObject decodes a requirement or identity object and returns it with its
// "type" member.
func decodeTypedObject(raw json.RawMessage) (rawObject, string, error) {
	o, err := decodeRawObject(raw)
	if err != nil {
		return rawObject{}, "", err
	}
	t, ok := o.get("type")
	if !ok {
		return rawObject{}, "", errors.New(`missing required key "type"`)
	}
	typ, err := decodeString(t)
	if err != nil {
		return rawObject{}, "", strictjson.WithPath(".type", err)
	}
	return o, typ, nil
}

var (
	// remapDomain matches exactly a domain (host[:port]).
	remapDomain = regexp.MustCompile("^" + reference.DomainRegexp.String() + "$")
	// remapDomainPrefix matches a string starting with a domain and a slash; needed because
	// the name grammar also accepts short names with docker.io implied.
	remapDomainPrefix = regexp.MustCompile("^" + reference.DomainRegexp.String() + "/")
	// remapName matches exactly a repository name, possibly not normalised.
	remapName = regexp.MustCompile("^" + reference.NameRegexp.String() + "$")
)

// validateRemapPrefix checks a remapIdentity prefix or signedPrefix as containers/image
// does: a bare domain, or a name that starts with a domain and a slash. Like there, short
// names such as "busybox" pass (they look like a domain) and simply never match.
func validateRemapPrefix(s string) error {
	if remapDomain.MatchString(s) || (remapName.MatchString(s) && remapDomainPrefix.MatchString(s)) {
		return nil
	}
	return fmt.Errorf("prefix %q is not valid: it must be a host[:port] or a repository namespace starting with one, without tag or digest", s)
}

type matchExact struct{}

func (matchExact) String() string { return matchExactType }

func (matchExact) matches(intended reference.Named, signed string) bool {
	s, err := reference.ParseNormalizedNamed(signed)
	if err != nil {
		return false
	}
	if reference.IsNameOnly(intended) || reference.IsNameOnly(s) {
		return false
	}
	return s.String() == intended.String()
}

type matchRepoDigestOrExact struct{}

func (matchRepoDigestOrExact) String() string { return matchRepoDigestOrExactType }

func (matchRepoDigestOrExact) matches(intended reference.Named, signed string) bool {
	s, err := reference.ParseNormalizedNamed(signed)
	if err != nil {
		return false
	}
	return repoDigestOrExact(intended, s)
}

// repoDigestOrExact is the matchRepoDigestOrExact rule on parsed values: a tagged intended
// reference needs the exact same reference; a digested one only the same repository (the
// digest itself is compared with the manifest separately).
func repoDigestOrExact(intended, signed reference.Named) bool {
	if reference.IsNameOnly(signed) {
		return false
	}
	switch intended.(type) {
	case reference.NamedTagged: // also when intended has both a tag and a digest
		return signed.String() == intended.String()
	case reference.Canonical:
		return signed.Name() == intended.Name()
	}
	return false
}

type matchRepository struct{}

func (matchRepository) String() string { return matchRepositoryType }

func (matchRepository) matches(intended reference.Named, signed string) bool {
	s, err := reference.ParseNormalizedNamed(signed)
	if err != nil {
		return false
	}
	return s.Name() == intended.Name()
}

type exactReference struct{ ref reference.Named }

func (m exactReference) String() string { return exactReferenceType + " " + m.ref.String() }

func (m exactReference) matches(_ reference.Named, signed string) bool {
	s, err := reference.ParseNormalizedNamed(signed)
	if err != nil || reference.IsNameOnly(s) {
		return false
	}
	return s.String() == m.ref.String()
}

type exactRepository struct{ ref reference.Named }

func (m exactRepository) String() string { return exactRepositoryType + " " + m.ref.Name() }

func (m exactRepository) matches(_ reference.Named, signed string) bool {
	s, err := reference.ParseNormalizedNamed(signed)
	if err != nil {
		return false
	}
	return s.Name() == m.ref.Name()
}

type remapIdentity struct{ prefix, signedPrefix string }

func (m remapIdentity) String() string {
	return remapIdentityType + " " + m.prefix + " -> " + m.signedPrefix
}

func (m remapIdentity) matches(intended reference.Named, signed string) bool {
	s, err := reference.ParseNormalizedNamed(signed)
	if err != nil {
		return false
	}
	remapped, err := m.remap(intended)
	if err != nil {
		return false
	}
	return repoDigestOrExact(remapped, s)
}

// remap replaces prefix by signedPrefix in ref when ref's name is prefix or lies under it.
// The result must already be in canonical form (it is not normalised again).
func (m remapIdentity) remap(ref reference.Named) (reference.Named, error) {
	name := ref.Name()
	switch {
	case len(name) < len(m.prefix):
		return ref, nil
	case len(name) == len(m.prefix):
		if name != m.prefix {
			return ref, nil
		}
	default:
		// Only '/' separates name components; a ':' after the prefix would be part of a
		// different host:port, which must match exactly.
		if !strings.HasPrefix(name, m.prefix) || name[len(m.prefix)] != '/' {
			return ref, nil
		}
	}
	return reference.ParseNamed(strings.Replace(ref.String(), m.prefix, m.signedPrefix, 1))
}
