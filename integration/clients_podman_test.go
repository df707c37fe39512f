package integration

// podman's registries.conf forms from the README, tested with a real podman (root, no
// daemon, vfs storage) through the pullgate binary: with pullgate as the location a
// denial is final and podman shows pullgate's reason; with pullgate as a mirror podman
// goes around a denied top-level manifest and pulls from the registry itself.

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullgate/pullgate/integration/harness"
)

// Markers of the README's registries.conf snippets: the first line of each fenced block.
const (
	readmePodmanMirror   = "# /etc/containers/registries.conf.d/pullgate.conf: pullgate as a mirror"
	readmePodmanLocation = "# /etc/containers/registries.conf.d/pullgate.conf: pullgate as the location"
)

func TestClientsPodman(t *testing.T) {
	t.Parallel()
	w := newEnforceWorld(t)
	var signed, unsigned v1.Hash
	parallel(t, "set-up", map[string]func(*testing.T){
		"build":    w.build(t.TempDir()),
		"signed":   func(t *testing.T) { signed = w.signedImage(t, "signed/app", w.trusted, fullName("signed/app")+":v1") },
		"unsigned": func(t *testing.T) { unsigned = w.image(t, "unsigned/app") },
	})
	pg := w.startPullgate(t)

	t.Run("location: denial is final and shows the reason", func(t *testing.T) {
		p := harness.NewPodman(t, podmanConf(t, w, pg, readmePodmanLocation))
		w.reg.ResetRequests()
		ref := fullName("signed/app") + ":v1"
		if _, errOut, err := p.Pull(t, ref); err != nil {
			t.Fatalf("podman pull %s: %v\n%s", ref, err, errOut)
		}
		if got := p.ImageDigest(t, ref); got != signed.String() {
			t.Errorf("podman holds %s as %q, want %s", ref, got, signed)
		}

		ref = fullName("unsigned/app") + ":v1"
		_, errOut, err := p.Pull(t, ref)
		if err == nil {
			t.Fatalf("podman pulled %s, want a denial", ref)
		}
		// podman reads the OCI error body of the GET: pullgate's message, reason included.
		for _, want := range []string{"denied", "is not trusted", "a signature was required, but no signature exists"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("podman's error does not contain %q:\n%s", want, errOut)
			}
		}
		if got := p.ImageDigest(t, ref); got != "" {
			t.Errorf("podman holds %s (%s) after a denial", ref, got)
		}
		if seen := clientRequests(w.reg); len(seen) != 0 {
			t.Errorf("podman asked the registry itself, bypassing pullgate: %v", seen)
		}
		t.Logf("podman shows: %s", strings.TrimSpace(errOut))
	})

	t.Run("mirror: podman falls back to the registry", func(t *testing.T) {
		p := harness.NewPodman(t, podmanConf(t, w, pg, readmePodmanMirror))
		w.reg.ResetRequests()
		before := len(decisions(pg, "unsigned/app", "manifest"))
		ref := fullName("unsigned/app") + ":v1"
		_, errOut, err := p.Pull(t, ref)
		if err != nil {
			t.Fatalf("podman pull %s through the mirror form failed (it falls back to the registry): %v\n%s", ref, err, errOut)
		}
		if got := p.ImageDigest(t, ref); got != unsigned.String() {
			t.Errorf("podman holds %s as %q, want the unsigned image %s", ref, got, unsigned)
		}
		if n := len(decisions(pg, "unsigned/app", "manifest")); n <= before {
			t.Errorf("pullgate was not asked first (%d decisions, %d before)", n, before)
		}
		if seen := clientRequests(w.reg); len(seen) == 0 {
			t.Errorf("podman pulled the unsigned image without asking the registry itself")
		}
		t.Logf("podman (exit 0) printed: %s", strings.TrimSpace(errOut))
	})
}

// podmanConf is the README's registries.conf snippet that starts with marker, with the
// test's names: registry.test for docker.io, the harness registry (plain http, hence
// insecure) as its location, pullgate's address for pullgate.example:5000.
func podmanConf(t *testing.T, w *enforceWorld, pg *harness.Pullgate, marker string) string {
	t.Helper()
	conf := strings.NewReplacer(
		`location = "docker.io"`, `location = "`+w.reg.Host+`"`+"\ninsecure = true",
		"pullgate.example:5000", pg.Host,
		"docker.io", upstreamName,
	).Replace(readmeSnippet(t, marker))
	t.Logf("registries.conf:\n%s", conf)
	return conf
}

// clientRequests lists the requests a client (anything but pullgate) sent to reg.
func clientRequests(reg *harness.Registry) []string {
	var seen []string
	for _, q := range reg.Requests() {
		if ua := q.Header.Get("User-Agent"); !strings.HasPrefix(ua, "pullgate/") {
			seen = append(seen, q.Method+" "+q.Path+" ("+ua+")")
		}
	}
	return seen
}
