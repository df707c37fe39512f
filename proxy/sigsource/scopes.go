package sigsource

import (
	"strings"

	"github.com/distribution/reference"
)

// scopeCandidates lists the docker-transport scopes that may apply to ref, most specific
// first (SPEC.md 1.3): the identity with tag or digest, the repository, each parent namespace
// down to host[:port], then *.domain wildcards with the port stripped.
func scopeCandidates(ref reference.Named) []string {
	var out []string
	if _, ok := ref.(reference.Tagged); ok {
		out = append(out, ref.String())
	} else if _, ok := ref.(reference.Digested); ok {
		out = append(out, ref.String())
	}
	name := ref.Name()
	for {
		out = append(out, name)
		i := strings.LastIndex(name, "/")
		if i < 0 {
			break
		}
		name = name[:i]
	}
	host := reference.Domain(ref)
	if i := strings.LastIndex(host, ":"); i >= 0 {
		host = host[:i]
	}
	for {
		i := strings.Index(host, ".")
		if i < 0 {
			break
		}
		host = host[i+1:]
		out = append(out, "*."+host)
	}
	return out
}
