package policy

import (
	"strings"

	"github.com/distribution/reference"
)

// dockerTransport is the only transport pullgate evaluates.
const dockerTransport = "docker"

// Scope returns the name of the requirement list that applies to identity, as written in
// the policy file: `transports.docker["docker.io/library/busybox:latest"]`,
// `transports.docker[""]` or `default`. Callers key caches by it.
func (p *Policy) Scope(identity reference.Named) string {
	return p.requirementsFor(identity).scope
}

// NeedsSignatures reports whether evaluating identity may read its signatures: whether
// its requirement list has a signature-checking requirement (signedBy, sigstoreSigned)
// before any requirement that rejects everything. When false, Evaluate never calls the
// SignatureSource.
func (p *Policy) NeedsSignatures(identity reference.Named) bool {
	for _, r := range p.requirementsFor(identity).reqs {
		if r.needsSignatures() {
			return true
		}
		if r.alwaysDenies() {
			return false
		}
	}
	return false
}

// requirementsFor selects the requirement list for a docker image (containers/image
// requirementsForImageRef with docker/policyconfiguration/naming.go): the full identity,
// then the repository and each parent namespace down to host[:port], then wildcard
// domains (port stripped), then the transport's "" scope, then the global default. The
// most specific list wins; lists are never merged.
func (p *Policy) requirementsFor(identity reference.Named) *requirementList {
	scopes, ok := p.transports[dockerTransport]
	if !ok {
		return p.defaultList
	}
	if id, ok := policyIdentity(identity); ok {
		if l, ok := scopes[id]; ok {
			return l
		}
	}
	for _, ns := range policyNamespaces(identity) {
		if l, ok := scopes[ns]; ok {
			return l
		}
	}
	if l, ok := scopes[""]; ok {
		return l
	}
	return p.defaultList
}

// policyIdentity is the identity scope string: name:tag or name@digest. A reference with
// both or neither has none (containers/image refuses such references).
func policyIdentity(ref reference.Named) (string, bool) {
	tagged, isTagged := ref.(reference.NamedTagged)
	digested, isDigested := ref.(reference.Canonical)
	switch {
	case isTagged && isDigested:
		return "", false
	case isTagged:
		return ref.Name() + ":" + tagged.Tag(), true
	case isDigested:
		return ref.Name() + "@" + digested.Digest().String(), true
	}
	return "", false
}

// policyNamespaces lists the namespace scopes to try, most specific first:
// docker.io/library/busybox, docker.io/library, docker.io, then *.io.
func policyNamespaces(ref reference.Named) []string {
	var res []string
	name := ref.Name()
	for {
		res = append(res, name)
		lastSlash := strings.LastIndex(name, "/")
		if lastSlash == -1 {
			break
		}
		name = name[:lastSlash]
	}
	// name is now the host[:port]; wildcards ignore the port.
	if colon := strings.Index(name, ":"); colon != -1 {
		name = name[:colon]
	}
	for {
		firstDot := strings.Index(name, ".")
		if firstDot == -1 {
			break
		}
		name = name[firstDot+1:]
		res = append(res, "*."+name)
	}
	return res
}
