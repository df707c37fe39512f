package integration

// docker (Debian's docker.io 20.10, a real dockerd started by the test) pulling through
// the pullgate binary: basic auth with `docker login` (issue 12), and an image served
// from the content store by an offline upstream, the registry receiving nothing (issue
// 11). docker treats registries on 127.0.0.0/8 as insecure, so plain http is used
// without an insecure-registries entry; pullgate is named in the reference
// (127.0.0.1:PORT/<repo>), its defaultUpstream choosing the registry.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/testsupport"
)

// dockerdStartTimeout bounds the wait for dockerd's "API listen on" line and
// dockerdStopTimeout the wait for it to exit after SIGTERM (it stops the containerd it
// started first); both take a few seconds here.
const (
	dockerdStartTimeout = 90 * time.Second
	dockerdStopTimeout  = 60 * time.Second
)

// dockerImage is an image of the registry as docker must end up holding it: the
// manifest digest (in RepoDigests) and the config digest (the image id).
type dockerImage struct {
	repo             string
	manifest, config v1.Hash
}

func TestDockerClient(t *testing.T) {
	t.Parallel()
	w := newContentWorld(t)
	images := map[string]*dockerImage{"auth": {repo: "docker/auth"}, "air": {repo: "docker/air"}}
	parallel(t, "set-up", map[string]func(*testing.T){
		"auth": func(t *testing.T) { w.dockerImage(t, images["auth"]) },
		"air":  func(t *testing.T) { w.dockerImage(t, images["air"]) },
	})
	dk := startDockerd(t)

	t.Run("basic auth", func(t *testing.T) { testDockerBasicAuth(t, w, dk, images["auth"]) })
	t.Run("offline imported image", func(t *testing.T) { testDockerOffline(t, w, dk, images["air"]) })
}

// dockerImage pushes a signed image of two real layers as im.repo:v1 and fills in its
// digests as the registry holds them.
func (w *contentWorld) dockerImage(t *testing.T, im *dockerImage) {
	t.Helper()
	im.manifest = w.signedOf(t, im.repo, harness.ImageOf(t, harness.RandomLayer(t, 64<<10), harness.RandomLayer(t, 8<<10)))
	img, err := remote.Image(w.reg.Ref(t, im.repo+":v1"))
	if err != nil {
		t.Fatalf("read %s:v1 from the registry: %v", im.repo, err)
	}
	if im.config, err = img.ConfigName(); err != nil {
		t.Fatal(err)
	}
}

// testDockerBasicAuth: pullgate with auth.htpasswd. `docker login` with the right
// password succeeds and `docker pull` then gets the image; a wrong password is refused;
// with an empty docker config (no login) the pull fails and nothing reaches the
// registry.
func testDockerBasicAuth(t *testing.T, w *contentWorld, dk *dockerd, im *dockerImage) {
	const user, password = "alice", "alice-docker-secret"
	hp := htpasswdFile(t, map[string]string{user: password})
	pg := harness.StartPullgate(t, w.bin, harness.WritePullgateConfig(t, harness.PullgateConfig{
		Upstreams:       []harness.Upstream{{Registry: upstreamName, URL: w.reg.URL}},
		DefaultUpstream: upstreamName, Policy: w.policy, RegistriesD: w.sig.RegistriesD,
		Extra: fmt.Sprintf("auth:\n  htpasswd: %q\n", hp),
	}))
	ref := pg.Host + "/" + im.repo + ":v1"

	anonymous := t.TempDir() // an empty DOCKER_CONFIG: no credentials at all
	n := len(w.reg.Requests())
	out, err := dk.run(t, anonymous, "", "pull", ref)
	if err == nil {
		t.Fatalf("docker pulled %s without logging in:\n%s", ref, out)
	}
	if !strings.Contains(strings.ToLower(out), "unauthorized") && !strings.Contains(out, "no basic auth credentials") {
		t.Errorf("docker pull without login failed, but not for want of credentials:\n%s", out)
	}
	dk.absent(t, ref)
	noUpstream(t, w, n, "a pull without credentials")
	t.Logf("without login docker shows: %s", lastLine(out))

	loggedIn := t.TempDir()
	if out, err := dk.run(t, loggedIn, "wrong password", "login", pg.Host, "-u", user, "--password-stdin"); err == nil {
		t.Errorf("docker login with a wrong password succeeded:\n%s", out)
	}
	if out, err := dk.run(t, loggedIn, password, "login", pg.Host, "-u", user, "--password-stdin"); err != nil {
		t.Fatalf("docker login %s: %v\n%s", pg.Host, err, out)
	}
	if out, err := dk.run(t, loggedIn, "", "pull", ref); err != nil {
		t.Fatalf("docker pull %s after login: %v\n%s\ndockerd:\n%s", ref, err, out, dk.logs.String())
	}
	dk.holds(t, ref, im)
	if strings.Contains(pg.Logs.String(), password) {
		t.Error("pullgate logged the password")
	}

	// The same pull with the empty config again: the daemon keeps no credentials of its own.
	dk.remove(t, im)
	if out, err := dk.run(t, anonymous, "", "pull", ref); err == nil {
		t.Errorf("docker pulled %s with an empty config after another config logged in:\n%s", ref, out)
	}
	dk.absent(t, ref)
}

// testDockerOffline: a pullgate with a filesystem store keeps the image (crane pulls it
// through), then a second pullgate on the same store with the upstream offline serves
// `docker pull` by tag, every blob from the store, while the registry (still up, its url
// in the configuration, so any contact would be counted) receives nothing.
func testDockerOffline(t *testing.T, w *contentWorld, dk *dockerd, im *dockerImage) {
	root := storeDir(t)
	online := w.start(t, w.config(t, pgOptions{content: harness.ContentKeys{Root: root}}))
	cranePull(t, ref(online, im.repo, ":v1"), im.manifest)
	online.Stop(t)

	n := len(w.reg.Requests())
	pg := w.start(t, w.config(t, pgOptions{offline: true, content: harness.ContentKeys{Root: root, TagTTL: "0s"}}))
	ref := pg.Host + "/" + im.repo + ":v1"
	if out, err := dk.run(t, t.TempDir(), "", "pull", ref); err != nil {
		t.Fatalf("docker pull %s from the offline pullgate: %v\n%s\ndockerd:\n%s", ref, err, out, dk.logs.String())
	}
	dk.holds(t, ref, im)
	noUpstream(t, w, n, "docker pulling through an offline upstream")
}

// dockerd is a docker daemon run by the test as root with all its state (data root,
// exec root, pid file, socket, the containerd it starts itself) in a temporary folder:
// no iptables, no bridge, the vfs storage driver, an empty daemon configuration.
type dockerd struct {
	sock string
	logs *harness.LogBuffer
	cmd  *exec.Cmd
	done chan struct{}
}

func startDockerd(t *testing.T) *dockerd {
	t.Helper()
	bin := harness.Tool(t, "dockerd")
	harness.Tool(t, "docker")
	dir := t.TempDir()
	d := &dockerd{sock: filepath.Join(dir, "docker.sock"), logs: &harness.LogBuffer{}, done: make(chan struct{})}
	config := filepath.Join(dir, "daemon.json")
	testsupport.WriteFile(t, config, "{}\n") // not /etc/docker/daemon.json
	d.cmd = exec.Command(bin, "--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs",
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"), "--host", "unix://"+d.sock, "--config-file", config)
	d.cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	ready := harness.StartLogged(t, "dockerd", d.cmd, d.logs, d.done, 1<<20, func(line []byte) (struct{}, bool) {
		return struct{}{}, bytes.Contains(line, []byte("API listen on"))
	})
	t.Cleanup(func() { d.stop(t) })
	select {
	case <-ready:
	case <-d.done:
		t.Fatalf("dockerd exited before listening:\n%s", d.logs.String())
	case <-time.After(dockerdStartTimeout):
		t.Fatalf("dockerd did not listen within %s:\n%s", dockerdStartTimeout, d.logs.String())
	}
	return d
}

// stop ends the daemon it started (SIGTERM to its PID, SIGKILL if it hangs) and waits.
func (d *dockerd) stop(t *testing.T) {
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM to dockerd: %v", err)
	}
	select {
	case <-d.done:
	case <-time.After(dockerdStopTimeout):
		t.Errorf("dockerd did not stop within %s of SIGTERM; killing it", dockerdStopTimeout)
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	_ = d.cmd.Wait()
	if t.Failed() {
		t.Logf("dockerd log:\n%s", d.logs.String())
	}
}

// run runs the docker client against the daemon with DOCKER_CONFIG=config (a folder of
// the test, so that no login of the machine is used or changed) and stdin, and returns
// its combined output.
func (d *dockerd) run(t *testing.T, config, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(harness.Tool(t, "docker"), append([]string{"--host", "unix://" + d.sock}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+config, "HOME="+config)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.WaitDelay = 5 * time.Second
	timer := time.AfterFunc(harness.ToolTimeout, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// inspect is docker's id and repo digests of ref, or ok false when it has no such image.
func (d *dockerd) inspect(t *testing.T, ref string) (id string, repoDigests []string, ok bool) {
	t.Helper()
	out, err := d.run(t, t.TempDir(), "", "image", "inspect", "--format", "{{json .Id}} {{json .RepoDigests}}", ref)
	if err != nil {
		if strings.Contains(strings.ToLower(out), "no such image") {
			return "", nil, false
		}
		t.Fatalf("docker image inspect %s: %v\n%s", ref, err, out)
	}
	idJSON, digestsJSON, _ := strings.Cut(strings.TrimSpace(out), " ")
	if err := json.Unmarshal([]byte(idJSON), &id); err != nil {
		t.Fatalf("docker image inspect %s: id %q: %v", ref, idJSON, err)
	}
	if err := json.Unmarshal([]byte(digestsJSON), &repoDigests); err != nil {
		t.Fatalf("docker image inspect %s: repo digests %q: %v", ref, digestsJSON, err)
	}
	return id, repoDigests, true
}

// holds checks that docker holds ref as im: its config digest as the image id and its
// manifest digest among the repo digests.
func (d *dockerd) holds(t *testing.T, ref string, im *dockerImage) {
	t.Helper()
	id, digests, ok := d.inspect(t, ref)
	if !ok {
		t.Fatalf("docker holds no image %s after the pull", ref)
	}
	if id != im.config.String() {
		t.Errorf("docker's image id of %s is %s, want the config %s", ref, id, im.config)
	}
	repo := strings.TrimSuffix(ref, ":v1")
	if want := repo + "@" + im.manifest.String(); !slices.Contains(digests, want) {
		t.Errorf("docker's repo digests of %s are %v, want %s", ref, digests, want)
	}
}

// absent checks that docker holds no image named ref.
func (d *dockerd) absent(t *testing.T, ref string) {
	t.Helper()
	if id, _, ok := d.inspect(t, ref); ok {
		t.Errorf("docker holds %s (%s) after a failed pull", ref, id)
	}
}

// remove deletes the image (all its names and layers) from docker.
func (d *dockerd) remove(t *testing.T, im *dockerImage) {
	t.Helper()
	if out, err := d.run(t, t.TempDir(), "", "image", "rm", "--force", im.config.String()); err != nil {
		t.Fatalf("docker image rm %s: %v\n%s", im.config, err, out)
	}
}
