package integration

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/proxy/gatetest"
)

// conformanceResult is the suite's verdict line; the FAIL count follows it in the
// summary. In read-only mode the binary panics after printing its report (TOOLING.md 7:
// a nil State.Data entry in ReportResultsYAML) and exits 2, so the exit status and the
// report files cannot be trusted: stdout is the result.
var (
	conformancePass   = regexp.MustCompile(`(?m)^OCI Conformance Result: Pass\s*$`)
	conformanceCounts = regexp.MustCompile(`(?m)^\s*(Pass|FAIL|Skip|Disabled|Error|Total)\.*:\s*(\d+)\s*$`)
)

// TestConformanceReadOnlyPull runs the OCI distribution-spec conformance suite's
// read-only pull workflow (ping, tag list with n/last, manifests and blobs by tag and
// digest, GET and HEAD, referrers) against pullgate in front of a token-auth registry.
func TestConformanceReadOnlyPull(t *testing.T) {
	reg := harness.StartRegistry(t, harness.WithTokenAuth(testUser, testPassword))
	img := harness.OCIImage(t, 2, 8<<10, harness.LinuxAMD64)
	imgDigest := reg.Push(t, "conformance/ro:v1", img)
	idxDigest := reg.PushIndex(t, "conformance/ro:multi", harness.OCIIndex(t, 4<<10, harness.LinuxAMD64, harness.LinuxARM64))
	// More tags, so that the tag-list test pages with last= over several.
	for _, tag := range []string{"a", "b", "zz"} {
		reg.Tag(t, "conformance/ro", tag, imgDigest)
	}
	reg.Push(t, "conformance/ro2:v1", harness.DockerImage(t, 1, 1024))
	var blobs []string
	for _, d := range harness.ImageBlobs(t, img) {
		blobs = append(blobs, d.String())
	}
	p := harness.StartProxy(t, harness.ProxyOptions{
		Upstreams:       []harness.Upstream{harness.UpstreamFor(upstreamName, reg)},
		DefaultUpstream: upstreamName,
		Gate:            gatetest.AllowAll{},
	})

	env := []string{
		"OCI_REGISTRY=" + p.Host,
		"OCI_TLS=disabled",
		"OCI_REPO1=conformance/ro",
		"OCI_REPO2=conformance/ro2",
		"OCI_API_PUSH=false",
		"OCI_API_BLOBS_DELETE=false",
		"OCI_API_MANIFESTS_DELETE=false",
		"OCI_API_TAGS_DELETE=false",
		"OCI_API_REFERRER=true",
		"OCI_RO_DATA_TAGS=v1 multi",
		"OCI_RO_DATA_MANIFESTS=" + strings.Join([]string{imgDigest.String(), idxDigest.String()}, " "),
		"OCI_RO_DATA_BLOBS=" + strings.Join(blobs, " "),
		"OCI_RO_DATA_REFERRERS=" + imgDigest.String(),
		"OCI_RESULTS_DIR=" + t.TempDir(),
		"HOME=" + t.TempDir(),
	}
	stdout, stderr, runErr := harness.Run(t, harness.ToolTimeout, env, "conformance")
	t.Logf("conformance exit: %v", runErr)
	counts := map[string]int{}
	for _, m := range conformanceCounts.FindAllStringSubmatch(stdout, -1) {
		n, _ := strconv.Atoi(m[2])
		counts[m[1]] = n
	}
	if !conformancePass.MatchString(stdout) || counts["FAIL"] != 0 || counts["Error"] != 0 || counts["Pass"] == 0 ||
		counts["Total"] != counts["Pass"]+counts["FAIL"]+counts["Skip"]+counts["Disabled"]+counts["Error"] {
		t.Fatalf("conformance: counts %v\nstdout:\n%s\nstderr:\n%s", counts, stdout, tail(stderr, 40))
	}
	t.Logf("conformance: %d pass, %d fail, %d skip, %d disabled", counts["Pass"], counts["FAIL"], counts["Skip"], counts["Disabled"])
	// The suite went through pullgate to the registry.
	if n := reg.CountRequests("GET", "/manifests/"); n == 0 {
		t.Fatal("no manifest request reached the registry")
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
