package proxy

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
)

// endpoint is the kind of /v2/ request.
type endpoint int

const (
	endpointPing endpoint = iota + 1
	endpointCatalog
	endpointManifest
	endpointBlob
	endpointBlobUpload
	endpointTags
	endpointReferrers
	// endpointSignatures is the registry signature API extension (SPEC.md 4):
	// /extensions/v2/<name>/signatures/<digest>.
	endpointSignatures
)

func (e endpoint) String() string {
	switch e {
	case endpointPing:
		return "ping"
	case endpointCatalog:
		return "catalog"
	case endpointManifest:
		return "manifest"
	case endpointBlob:
		return "blob"
	case endpointBlobUpload:
		return "blob-upload"
	case endpointTags:
		return "tags"
	case endpointReferrers:
		return "referrers"
	case endpointSignatures:
		return "signatures"
	}
	return "unknown"
}

// route is a parsed /v2/ request.
type route struct {
	endpoint endpoint
	// name is the repository name as the client wrote it in the path (docker.io/alpine,
	// alpine): links pointing back at pullgate use it.
	name string
	// registry is the configured registry name of the upstream chosen.
	registry string
	// repo is the repository path on that upstream (library/alpine).
	repo string
	// ref is the tag or digest of a manifest request, the digest of a blob or referrers
	// request.
	ref string
	// ns is the ns= query value when rule 2 (containerd's ns=) chose the upstream; it is
	// echoed as OCI-Namespace.
	ns string
	// clientNS is the ns= query value the client sent, if any; pagination links keep it.
	clientNS string
}

// Grammar from the OCI distribution spec.
var (
	nameRE = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRE  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// maxNameLength is the longest repository name accepted, the limit docker's reference
// grammar and most clients apply to a full name.
const maxNameLength = 255

// dockerHub is the registry name for which one-component names get "library/".
const dockerHub = "docker.io"

// router resolves request paths to upstreams (DESIGN.md "Routing (contract)").
type router struct {
	// registries holds the configured registry names.
	registries map[string]bool
	// defaultRegistry is used when neither a path prefix nor ns= names an upstream;
	// empty means such requests are NAME_UNKNOWN.
	defaultRegistry string
}

// signatureAPIPrefix starts the paths of the registry signature API extension.
const signatureAPIPrefix = "/extensions/v2/"

// parse resolves path (the decoded URL path) and query. Every error is an *Error.
func (rt *router) parse(path string, query url.Values) (route, error) {
	if rest, ok := strings.CutPrefix(path, signatureAPIPrefix); ok {
		parts := strings.Split(rest, "/")
		n := len(parts)
		if n < 3 || parts[n-2] != "signatures" {
			return route{}, &Error{Code: errcode.ErrorCodeUnsupported, Status: 404, Message: "unknown registry API endpoint"}
		}
		return rt.finish(route{endpoint: endpointSignatures, ref: parts[n-1]}, parts[:n-2], query)
	}
	rest, ok := strings.CutPrefix(path, "/v2")
	if !ok || (rest != "" && rest[0] != '/') {
		return route{}, &Error{Code: errcode.ErrorCodeUnsupported, Status: 404, Message: "not a registry API path"}
	}
	rest = strings.TrimPrefix(rest, "/")
	switch rest {
	case "":
		return route{endpoint: endpointPing}, nil
	case "_catalog":
		return route{endpoint: endpointCatalog}, nil
	}

	parts := strings.Split(rest, "/")
	n := len(parts)
	var r route
	var nameParts []string
	switch {
	case n >= 3 && parts[n-2] == "tags" && parts[n-1] == "list":
		r.endpoint, nameParts = endpointTags, parts[:n-2]
	case n >= 3 && parts[n-2] == "manifests":
		r.endpoint, nameParts, r.ref = endpointManifest, parts[:n-2], parts[n-1]
	case n >= 3 && parts[n-2] == "blobs" && parts[n-1] != "uploads":
		r.endpoint, nameParts, r.ref = endpointBlob, parts[:n-2], parts[n-1]
	case n >= 3 && parts[n-2] == "referrers":
		r.endpoint, nameParts, r.ref = endpointReferrers, parts[:n-2], parts[n-1]
	case n >= 3 && parts[n-2] == "blobs", n >= 4 && parts[n-3] == "blobs" && parts[n-2] == "uploads":
		// Upload sessions (blobs/uploads, blobs/uploads/, blobs/uploads/<id>) are writes,
		// whatever the method.
		return route{endpoint: endpointBlobUpload}, nil
	default:
		return route{}, &Error{Code: errcode.ErrorCodeUnsupported, Status: 404, Message: "unknown registry API endpoint"}
	}

	return rt.finish(r, nameParts, query)
}

// finish resolves the name of a parsed path and validates its reference.
func (rt *router) finish(r route, nameParts []string, query url.Values) (route, error) {
	r.name = strings.Join(nameParts, "/")
	if err := rt.resolve(&r, nameParts, query); err != nil {
		return route{}, err
	}
	if err := checkReference(r); err != nil {
		return route{}, err
	}
	return r, nil
}

// resolve applies the routing rules to the name, filling registry and repo.
func (rt *router) resolve(r *route, nameParts []string, query url.Values) error {
	if query.Has("ns") {
		r.clientNS = query.Get("ns")
	}
	switch {
	case len(nameParts) > 1 && rt.registries[nameParts[0]]:
		// Rule 1: the first component is a configured registry (podman mirror with a path).
		r.registry = nameParts[0]
		r.repo = strings.Join(nameParts[1:], "/")
	case query.Has("ns"):
		// Rule 2: containerd's ns=. An unconfigured registry reaches no upstream.
		ns := query.Get("ns")
		if !rt.registries[ns] {
			return &Error{Code: errcode.ErrorCodeNameUnknown,
				Message: fmt.Sprintf("ns=%q names no upstream registry configured in pullgate", ns)}
		}
		r.registry, r.ns, r.repo = ns, ns, r.name
	case rt.defaultRegistry != "":
		// Rule 3: docker's registry-mirrors.
		r.registry, r.repo = rt.defaultRegistry, r.name
	default:
		return &Error{Code: errcode.ErrorCodeNameUnknown,
			Message: fmt.Sprintf("%q names no configured upstream registry and no default upstream is set", r.name)}
	}
	if len(r.name) > maxNameLength || !nameRE.MatchString(r.repo) {
		return &Error{Code: errcode.ErrorCodeNameInvalid,
			Message: fmt.Sprintf("invalid repository name %q", r.name)}
	}
	if r.registry == dockerHub && !strings.Contains(r.repo, "/") {
		r.repo = "library/" + r.repo
	}
	return nil
}

// checkReference validates the tag or digest of a request.
func checkReference(r route) error {
	switch r.endpoint {
	case endpointManifest:
		if tagRE.MatchString(r.ref) {
			return nil
		}
		if _, err := digest.Parse(r.ref); err == nil {
			return nil
		}
		return &Error{Code: errcode.ErrorCodeTagInvalid,
			Message: fmt.Sprintf("invalid reference %q: neither a tag nor a digest", r.ref)}
	case endpointBlob, endpointReferrers, endpointSignatures:
		if _, err := digest.Parse(r.ref); err != nil {
			return &Error{Code: errcode.ErrorCodeDigestInvalid,
				Message: fmt.Sprintf("invalid digest %q", r.ref), Err: err}
		}
	}
	return nil
}

// isDigest reports whether a manifest reference is a digest rather than a tag. Tags
// cannot contain ':', so the test is exact for references that passed checkReference.
func isDigest(ref string) bool { return strings.Contains(ref, ":") }
