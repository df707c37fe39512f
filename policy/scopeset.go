package policy

import (
	"errors"
	"fmt"
	"strings"

	"github.com/distribution/reference"
)

// ScopeSet is a list of docker transport scopes written as in policy.json
// (docker.io, docker.io/library, docker.io/library/alpine, docker.io/library/alpine:3.20,
// ...@sha256:..., *.example.com), matched against image identities exactly as the policy's
// own scopes are (requirementsFor): the identity, then its repository and each parent
// namespace, then wildcard domains. pullgate's enforcement.warn is one.
type ScopeSet struct {
	scopes map[string]bool
}

// NewScopeSet checks every scope (ValidateWarnScope) and returns the set.
func NewScopeSet(scopes []string) (*ScopeSet, error) {
	s := &ScopeSet{scopes: make(map[string]bool, len(scopes))}
	for i, sc := range scopes {
		if err := ValidateWarnScope(sc); err != nil {
			return nil, fmt.Errorf("scope [%d]: %w", i, err)
		}
		s.scopes[sc] = true
	}
	return s, nil
}

// Match returns the most specific scope of the set that identity falls in.
func (s *ScopeSet) Match(identity reference.Named) (string, bool) {
	if s == nil || len(s.scopes) == 0 {
		return "", false
	}
	if id, ok := policyIdentity(identity); ok && s.scopes[id] {
		return id, true
	}
	for _, ns := range policyNamespaces(identity) {
		if s.scopes[ns] {
			return ns, true
		}
	}
	return "", false
}

// Len is the number of scopes.
func (s *ScopeSet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.scopes)
}

// ValidateWarnScope checks that scope is a docker transport scope that can match an image:
// a fully qualified registry, namespace or repository (as docker normalises it: the
// registry is written, docker.io images keep library/), optionally with a tag or digest,
// or a *.domain wildcard. The empty scope, which policy.json uses for "every docker image",
// is refused: a list that warns for everything should say so registry by registry.
func ValidateWarnScope(scope string) error {
	switch {
	case scope == "":
		return errors.New(`the empty scope is not allowed (it would cover every image); name the registries`)
	case strings.TrimSpace(scope) != scope || strings.ContainsAny(scope, " \t\n"):
		return fmt.Errorf("%q contains white space", scope)
	case scope != strings.ToLower(scope) && !strings.ContainsAny(scope, "@:"):
		return fmt.Errorf("%q must be lower-case", scope)
	case strings.HasPrefix(scope, "*."):
		domain := scope[2:]
		if domain == "" || strings.ContainsAny(domain, ":/*") || !qualifiedName(domain+"/x") {
			return fmt.Errorf("%q is not a *.domain wildcard", scope)
		}
		return nil
	case !strings.Contains(scope, "/"):
		if !qualifiedName(scope + "/x") {
			return fmt.Errorf("%q is not a registry host[:port] (a scope names a registry, a namespace or a repository, fully qualified)", scope)
		}
		return nil
	}
	ref, err := reference.Parse(scope)
	if err != nil {
		return fmt.Errorf("%q is not a name as written in policy.json (such as docker.io/library/alpine): %v", scope, err)
	}
	named, ok := ref.(reference.Named)
	if !ok || !qualifiedName(named.Name()) {
		return fmt.Errorf("%q is not fully qualified: it must start with the registry (docker.io/library/alpine, not alpine)", scope)
	}
	if _, tagged := named.(reference.NamedTagged); tagged {
		if _, both := named.(reference.Canonical); both {
			return fmt.Errorf("%q has both a tag and a digest", scope)
		}
	}
	if name := named.Name(); name != strings.ToLower(name) {
		return fmt.Errorf("%q must be lower-case", scope)
	}
	return nil
}

// qualifiedName reports whether name's first component is a registry host: it has a dot
// or a port, or is localhost (docker's rule), and the whole parses as a name.
func qualifiedName(name string) bool {
	if _, err := reference.Parse(name); err != nil {
		return false
	}
	host, _, ok := strings.Cut(name, "/")
	return ok && (strings.ContainsAny(host, ".:") || host == "localhost")
}
