package testsupport

import (
	"os"
	"path/filepath"
	"testing"
)

// ConfigDir creates a folder holding the files a pullgate configuration refers to:
// policy.json (reject everything), registries.d/, ca.pem and docker-config.json. The
// contents only need to exist here; their formats are checked by the packages that read
// them.
func ConfigDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"policy.json":        `{"default":[{"type":"reject"}]}`,
		"ca.pem":             "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
		"docker-config.json": `{"auths":{}}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "registries.d"), 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// WriteConfig writes content as config.yaml in a fresh ConfigDir and returns its path.
func WriteConfig(t testing.TB, content string) string {
	t.Helper()
	path := filepath.Join(ConfigDir(t), "config.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// GoodConfig is a valid configuration for a WriteConfig folder: two upstreams, a default
// one, and the folder's policy.json and registries.d.
const GoodConfig = `listen: 127.0.0.1:5000
upstreams:
  - registry: docker.io
    url: https://registry-1.docker.io
  - registry: 127.0.0.1:5001
    url: http://127.0.0.1:5001
defaultUpstream: docker.io
policy:
  path: ./policy.json
  registriesDir: ./registries.d
`
