package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Containerd is a containerd daemon run by the test as root, with its own root, state,
// config and socket in a temporary folder: the native snapshotter (no overlayfs needed),
// the CRI plugin disabled, nothing written outside the folder. ctr talks to it.
//
// ctr resolves and fetches in its own process (it reads --hosts-dir itself, and its
// warnings about hosts.toml go to its stderr); the daemon only stores and unpacks.
type Containerd struct {
	// Socket is the daemon's gRPC socket (ctr --address).
	Socket string
	// Logs holds the daemon's stderr.
	Logs *LogBuffer

	ctr  string
	cmd  *exec.Cmd
	done chan struct{}
}

// containerdStartTimeout bounds the wait for the daemon's "successfully booted" line; it
// boots in well under a second.
const containerdStartTimeout = 30 * time.Second

// maxSocketPath is the longest path a unix socket may have (sun_path is 108 bytes on
// Linux, NUL included).
const maxSocketPath = 107

// StartContainerd starts a containerd daemon and stops it (SIGTERM, then waits) when the
// test ends. containerd and ctr must be installed (hack/install-test-tools.sh).
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()
	bin := Tool(t, "containerd")
	c := &Containerd{ctr: Tool(t, "ctr"), Logs: &LogBuffer{}, done: make(chan struct{})}
	dir := t.TempDir()
	c.Socket = filepath.Join(dir, "containerd.sock")
	if len(c.Socket)+len(".ttrpc") > maxSocketPath {
		t.Fatalf("harness: containerd socket path %s is too long for a unix socket (shorten the test name)", c.Socket)
	}
	// The opt plugin would create /opt/containerd; it gets a folder of the test instead.
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Socket, c.Socket+".ttrpc", filepath.Join(dir, "opt"))
	configPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	c.cmd = exec.Command(bin, "--config", configPath)
	c.cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	booted := StartLogged(t, "containerd", c.cmd, c.Logs, c.done, 1<<20, func(line []byte) (struct{}, bool) {
		return struct{}{}, bytes.Contains(line, []byte("containerd successfully booted"))
	})
	logOnFailure(t, "containerd", c.Logs)
	awaitReady(t, "containerd", "boot", c.cmd, c.done, booted, containerdStartTimeout, c.Logs)
	t.Cleanup(func() {
		if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("harness: SIGTERM to containerd: %v", err)
		}
		<-c.done
		// containerd exits non-zero on SIGTERM in some versions; it must exit, that is all.
		_ = c.cmd.Wait()
	})
	return c
}

// CtrPull runs `ctr images pull` of ref with the hosts.toml files of hostsDir, over plain
// http (the test servers speak no TLS; hosts.toml URLs say http:// themselves, and
// --plain-http is the scheme of the registry named in ref when no hosts.toml applies),
// unpacking with the native snapshotter. It returns ctr's combined output and its error,
// without judging them.
func (c *Containerd) CtrPull(t testing.TB, hostsDir, ref string) (output string, err error) {
	t.Helper()
	stdout, stderr, err := runCommand(ToolTimeout, c.ctr, "", append(os.Environ(), "HOME="+t.TempDir()),
		"--address", c.Socket, "images", "pull", "--plain-http", "--snapshotter", "native", "--hosts-dir", hostsDir, ref)
	return stdout + stderr, err
}

// CtrImageDigest returns the digest containerd stores for the image named ref (the
// target of `ctr images ls`), or "" when it has no such image.
func (c *Containerd) CtrImageDigest(t testing.TB, ref string) string {
	t.Helper()
	stdout, stderr, err := runCommand(ToolTimeout, c.ctr, "", os.Environ(), "--address", c.Socket, "images", "ls")
	if err != nil {
		t.Fatalf("harness: ctr images ls: %v\n%s", err, stderr)
	}
	// REF TYPE DIGEST SIZE PLATFORMS LABELS, one image a line after the header.
	for _, line := range strings.Split(stdout, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == ref {
			return f[2]
		}
	}
	return ""
}

// CtrRemove removes the image named ref from containerd (no error if it is absent), so
// that the next pull of ref starts from nothing.
func (c *Containerd) CtrRemove(t testing.TB, ref string) {
	t.Helper()
	if c.CtrImageDigest(t, ref) == "" {
		return
	}
	if _, stderr, err := runCommand(ToolTimeout, c.ctr, "", os.Environ(), "--address", c.Socket, "images", "rm", "--sync", ref); err != nil {
		t.Fatalf("harness: ctr images rm %s: %v\n%s", ref, err, stderr)
	}
}

// WriteHostsToml writes content as hostsDir/<registry>/hosts.toml, the file containerd
// reads for images named <registry>/... (registry is host[:port], written as is: ctr
// 1.6 looks for the host:port folder).
func WriteHostsToml(t testing.TB, hostsDir, registry, content string) {
	t.Helper()
	dir := filepath.Join(hostsDir, registry)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
