package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// SkopeoOptions says which configuration a skopeo run sees. The zero value is
// `--insecure-policy` with no registries.d and an empty registries.conf.
type SkopeoOptions struct {
	// Policy is a policy.json path given with --policy; empty means --insecure-policy.
	Policy string
	// RegistriesD is given with --registries.d; empty means an empty folder, so that no
	// system or user lookaside configuration is read.
	RegistriesD string
	// RegistriesConf is appended to the registries.conf skopeo reads (after
	// `unqualified-search-registries = []`), for [[registry]] tables.
	RegistriesConf string
	// Env is added to the environment (GNUPGHOME for signing).
	Env []string
}

// SkopeoRun runs skopeo with a private HOME and the configuration of opts, and returns
// its output and error without judging them.
func SkopeoRun(t testing.TB, opts SkopeoOptions, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "registries.conf")
	if err := os.WriteFile(conf, []byte("unqualified-search-registries = []\n"+opts.RegistriesConf), 0o600); err != nil {
		t.Fatal(err)
	}
	regd := opts.RegistriesD
	if regd == "" {
		regd = filepath.Join(dir, "registries.d")
		if err := os.Mkdir(regd, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// --registries-conf, not CONTAINERS_REGISTRIES_CONF: skopeo 1.9 ignores the variable.
	global := []string{"--registries-conf", conf, "--registries.d", regd}
	if opts.Policy == "" {
		global = append(global, "--insecure-policy")
	} else {
		global = append(global, "--policy", opts.Policy)
	}
	env := append([]string{"HOME=" + dir,
		"REGISTRY_AUTH_FILE=" + filepath.Join(dir, "auth.json")}, opts.Env...)
	return Run(t, ToolTimeout, env, "skopeo", append(global, args...)...)
}

// SkopeoOK runs skopeo like SkopeoRun and fails the test if it fails.
func SkopeoOK(t testing.TB, opts SkopeoOptions, args ...string) string {
	t.Helper()
	out, errOut, err := SkopeoRun(t, opts, args...)
	if err != nil {
		t.Fatalf("skopeo %v: %v\nstdout: %s\nstderr: %s", args, err, out, errOut)
	}
	return out
}

// SkopeoPullOK runs `skopeo copy --remove-signatures` with args (options, then the source)
// into a new OCI layout, like SkopeoOK, and fails the test unless the layout then holds
// exactly one manifest, want.
func SkopeoPullOK(t testing.TB, opts SkopeoOptions, want v1.Hash, args ...string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "oci")
	SkopeoOK(t, opts, append(append([]string{"copy", "--remove-signatures"}, args...), "oci:"+out+":v1")...)
	if m := LayoutManifests(t, out); len(m) != 1 || m[0].Digest != want {
		t.Errorf("skopeo pulled %v, want %s", m, want)
	}
}

// RegistryLocation is a registries.conf table that makes skopeo reach the registry
// named prefix (registry.test) at location (127.0.0.1:<port>) over plain http. Pulls
// then use prefix in the policy identity and location for the lookaside path, as
// containers/image does for any mirror or relocated registry.
func RegistryLocation(prefix, location string) string {
	return fmt.Sprintf("\n[[registry]]\nprefix = %q\nlocation = %q\ninsecure = true\n", prefix, location)
}
