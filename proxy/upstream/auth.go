package upstream

import (
	"fmt"
	"os"

	"github.com/docker/cli/cli/config"
	"github.com/google/go-containerregistry/pkg/authn"
)

// dockerConfigAuth reads a docker config.json and returns the credentials stored for
// the first of keys that has any (credential helpers named in the file are consulted),
// or anonymous access. The file is read once, when the client is created: a missing
// or unreadable file is a configuration error, reported at start-up.
func dockerConfigAuth(path string, keys []string) (authn.Authenticator, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("docker config: %w", err)
	}
	defer f.Close()
	cf, err := config.LoadFromReader(f)
	if err != nil {
		// The decoder's message names a position, never the file's contents.
		return nil, fmt.Errorf("docker config %s: %w", path, err)
	}
	for _, k := range keys {
		ac, err := cf.GetAuthConfig(k)
		if err != nil {
			return nil, fmt.Errorf("docker config %s: credentials for %s: %w", path, k, err)
		}
		if ac.Username != "" || ac.Password != "" || ac.Auth != "" || ac.IdentityToken != "" || ac.RegistryToken != "" {
			return authn.FromConfig(authn.AuthConfig{
				Username:      ac.Username,
				Password:      ac.Password,
				Auth:          ac.Auth,
				IdentityToken: ac.IdentityToken,
				RegistryToken: ac.RegistryToken,
			}), nil
		}
	}
	return authn.Anonymous, nil
}
