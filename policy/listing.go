package policy

import (
	"strings"

	"github.com/distribution/reference"
)

// RejectsRepository reports whether the policy rejects every image of named's repository
// (any tag or digest of it), and names the scope that decides: the requirement list
// that applies to the repository reference (the same lookup as evaluation, without a
// tag or digest) has a requirement that denies everything (reject, signedBaseLayer), and
// no scope for one of its tags or digests (`repo:tag`, `repo@digest`) could accept an
// image. When a tag scope could accept, rejected is false and scope names that scope:
// the repository's listings are then needed by whoever pulls that tag.
func (p *Policy) RejectsRepository(named reference.Named) (scope string, rejected bool) {
	repo := reference.TrimNamed(named)
	l := p.requirementsFor(repo)
	if !l.alwaysDenies() {
		return l.scope, false
	}
	for key, sl := range p.transports[dockerTransport] {
		rest, ok := strings.CutPrefix(key, repo.Name())
		if ok && (strings.HasPrefix(rest, ":") || strings.HasPrefix(rest, "@")) && !sl.alwaysDenies() {
			return sl.scope, false
		}
	}
	return l.scope, true
}

// alwaysDenies reports whether the list rejects every image: every requirement must be
// satisfied, so one that denies everything decides.
func (l *requirementList) alwaysDenies() bool {
	for _, r := range l.reqs {
		if r.alwaysDenies() {
			return true
		}
	}
	return false
}
