package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Podman runs podman as root without a daemon, fully hermetic: vfs storage in a
// temporary folder, a private HOME (podman reads $HOME/.config/containers even as root),
// the registries.conf given, an accept-anything signature policy (so that what is
// tested is pullgate's verdict alone) and no events, journald or systemd.
type Podman struct {
	bin, policy string
	env, global []string
}

// NewPodman prepares a podman whose registries.conf is registriesConf (after
// `unqualified-search-registries = []`). podman must be installed
// (hack/install-test-tools.sh).
func NewPodman(t testing.TB, registriesConf string) *Podman {
	t.Helper()
	dir := t.TempDir()
	home, tmp := filepath.Join(dir, "home"), filepath.Join(dir, "tmp")
	// podman refuses a runroot longer than 50 characters, which a test's TempDir often is.
	runroot, err := os.MkdirTemp("", "podrun")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(runroot) })
	// An empty registries.d of the user: no lookaside of the host's configuration.
	for _, d := range []string{filepath.Join(home, ".config", "containers", "registries.d"), tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"registries.conf": "unqualified-search-registries = []\n" + registriesConf,
		"auth.json":       "{}\n", // podman 4.3 fails when REGISTRY_AUTH_FILE does not exist
		"policy.json":     `{"default": [{"type": "insecureAcceptAnything"}]}` + "\n",
		"storage.conf":    "[storage]\ndriver = \"vfs\"\nrunroot = \"" + runroot + "\"\ngraphroot = \"" + filepath.Join(dir, "root") + "\"\n",
		"containers.conf": "[engine]\nevents_logger = \"none\"\ncgroup_manager = \"cgroupfs\"\ntmp_dir = \"" + tmp + "\"\nimage_copy_tmp_dir = \"" + tmp + "\"\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return &Podman{
		bin:    Tool(t, "podman"),
		policy: filepath.Join(dir, "policy.json"),
		env: append(os.Environ(), "HOME="+home, "TMPDIR="+tmp,
			"CONTAINERS_REGISTRIES_CONF="+filepath.Join(dir, "registries.conf"),
			"CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"),
			"CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"),
			"REGISTRY_AUTH_FILE="+filepath.Join(dir, "auth.json")),
		global: []string{"--root", filepath.Join(dir, "root"), "--runroot", runroot,
			"--storage-driver", "vfs", "--events-backend", "none"},
	}
}

// Pull runs `podman pull ref` and returns its output and error without judging them.
func (p *Podman) Pull(t testing.TB, ref string) (stdout, stderr string, err error) {
	t.Helper()
	return runCommand(ToolTimeout, p.bin, "", p.env, append(p.global, "pull", "--signature-policy", p.policy, ref)...)
}

// ImageDigest is the manifest digest podman stored for ref, or "" when it has no such
// image.
func (p *Podman) ImageDigest(t testing.TB, ref string) string {
	t.Helper()
	out, _, err := runCommand(ToolTimeout, p.bin, "", p.env, append(p.global, "image", "inspect", "--format", "{{.Digest}}", ref)...)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// Run runs podman with args after its global flags and returns its output and error.
func (p *Podman) Run(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runCommand(ToolTimeout, p.bin, "", p.env, append(p.global, args...)...)
}
