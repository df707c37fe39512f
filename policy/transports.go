package policy

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"
)

// validateScope checks a scope key of a transport section the way the transport itself
// does in containers/image (ValidatePolicyConfigurationScope). The docker transport and
// unknown transports accept any scope; the empty scope "" is always allowed. pullgate only
// evaluates docker images, but a policy podman would refuse must not load here either.
func validateScope(transport, scope string) error {
	if scope == "" {
		return nil
	}
	switch transport {
	case "dir":
		return validatePathScope(scope)
	case "oci", "oci-archive":
		return validatePathScope(scope)
	case "docker-archive", "docker-daemon", "sif", "tarball":
		return fmt.Errorf("%s: does not support any scopes except the default \"\" one", transport)
	case "atomic":
		if !atomicScope.MatchString(scope) {
			return fmt.Errorf("invalid scope name %s", scope)
		}
	case "containers-storage":
		return validateStorageScope(scope)
	}
	return nil
}

// validatePathScope is the rule of the path-based transports (dir, oci, oci-archive): an
// absolute, clean path other than "/".
func validatePathScope(scope string) error {
	if !strings.HasPrefix(scope, "/") {
		return fmt.Errorf("invalid scope %s: must be an absolute path", scope)
	}
	if scope == "/" {
		return errors.New(`invalid scope "/": use the generic default scope ""`)
	}
	if cleaned := filepath.Clean(scope); cleaned != scope {
		return fmt.Errorf("invalid scope %s: uses non-canonical format, perhaps try %s", scope, cleaned)
	}
	return nil
}

// atomicScope is the openshift ("atomic") transport's scope syntax:
// [hostname[/namespace[/stream[:tag]]]].
var atomicScope = regexp.MustCompile("^[^/]*(/[^:/]*(/[^:/]*(:[^:/]*)?)?)?$")

var errInvalidStorageReference = errors.New("invalid containers-storage reference")

// validateStorageScope is containers-storage's rule: "[driver@/graph/root]" or
// "[/graph/root]", optionally followed by name[:tag][@digest][@image ID].
func validateStorageScope(scope string) error {
	if scope[0] != '[' {
		return errInvalidStorageReference
	}
	closeIndex := strings.IndexRune(scope, ']')
	if closeIndex < 1 {
		return errInvalidStorageReference
	}
	storeSpec := scope[1:closeIndex]
	scope = scope[closeIndex+1:]
	if a, b, ok := strings.Cut(storeSpec, "@"); ok && a != "" && b != "" {
		if !filepath.IsAbs(b) {
			return errors.New("the graph root of a containers-storage scope must be an absolute path")
		}
	} else if !ok && a != "" {
		if !filepath.IsAbs(storeSpec) {
			return errors.New("the graph root of a containers-storage scope must be an absolute path")
		}
	} else {
		return errInvalidStorageReference
	}
	if scope == "" {
		return nil
	}
	fields := strings.SplitN(scope, "@", 3)
	switch len(fields) {
	case 2: // name:tag@ID or name[:tag]@digest
		if idErr := validateImageID(fields[1]); idErr != nil {
			if _, digestErr := digest.Parse(fields[1]); digestErr != nil {
				return fmt.Errorf("%v is neither a valid digest (%s) nor a valid ID (%s)", fields[1], digestErr, idErr)
			}
		}
	case 3: // name[:tag]@digest@ID
		if _, err := digest.Parse(fields[1]); err != nil {
			return err
		}
		if err := validateImageID(fields[2]); err != nil {
			return err
		}
	}
	return nil
}

func validateImageID(id string) error {
	_, err := digest.Parse("sha256:" + id)
	return err
}
