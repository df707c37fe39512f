package integration_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/testsupport"
)

// Shared by the sigstore tests: one upstream registry, a policy.json with one scope per
// case, a registries.d, the real pullgate binary in front of the registry, and the
// containers/image oracle pulling directly from it with the same two files.

// sigAlias is a second, port-less name pullgate knows the upstream by. Clients cannot use
// prefix routing with the upstream's own name: a repository path may not contain the ':'
// of 127.0.0.1:<port>. Images are signed, and policies written, for that own name.
const sigAlias = "upstream.test"

// sigEnv is one upstream, its policy files and pullgate in front of it.
type sigEnv struct {
	reg *harness.Registry
	// policy and regd are the policy.json and registries.d both pullgate and the oracle
	// read; names in them are the upstream's own (127.0.0.1:<port>).
	policy, regd string
	pg           *harness.Pullgate
	oracle       *harness.Oracle
}

// sigScope is one repository's requirement in the policy.
type sigScope struct {
	repo        string
	requirement map[string]any
}

// newSigEnv writes policy.json (default reject, one scope per repository) and
// registries.d (use-sigstore-attachments for the upstream, except the repositories in
// noAttachments), and starts pullgate with the upstream as its default and as sigAlias.
func newSigEnv(t *testing.T, reg *harness.Registry, scopes []sigScope, noAttachments ...string) *sigEnv {
	t.Helper()
	dir := t.TempDir()
	docker := map[string]any{}
	for _, s := range scopes {
		docker[reg.Host+"/"+s.repo] = []any{s.requirement}
	}
	policy := sigWriteJSON(t, filepath.Join(dir, "policy.json"), map[string]any{
		"default":    []any{map[string]any{"type": "reject"}},
		"transports": map[string]any{"docker": docker},
	})
	regd := filepath.Join(dir, "registries.d")
	if err := os.Mkdir(regd, 0o700); err != nil {
		t.Fatal(err)
	}
	// JSON is YAML; keys with ':' stay quoted.
	sections := map[string]any{reg.Host: map[string]any{"use-sigstore-attachments": true}}
	for _, repo := range noAttachments {
		sections[reg.Host+"/"+repo] = map[string]any{"use-sigstore-attachments": false}
	}
	sigWriteJSON(t, filepath.Join(regd, "upstream.yaml"), map[string]any{"docker": sections})

	config := harness.WritePullgateConfig(t, harness.PullgateConfig{
		Upstreams:       []harness.Upstream{{Registry: reg.Host, URL: reg.URL}, {Registry: sigAlias, URL: reg.URL}},
		DefaultUpstream: reg.Host,
		Policy:          policy,
		RegistriesD:     regd,
	})
	pg := harness.StartPullgate(t, harness.BuildPullgate(t, t.TempDir()), config)
	return &sigEnv{reg: reg, policy: policy, regd: regd, pg: pg, oracle: harness.NewOracle(t)}
}

func sigWriteJSON(t *testing.T, path string, v any) string {
	t.Helper()
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	testsupport.WriteFile(t, path, data)
	return path
}

// keyRequirement is sigstoreSigned with a public key file, with signedIdentity
// matchRepository unless identity is nil.
func keyRequirement(pub string, identity map[string]any) map[string]any {
	r := map[string]any{"type": "sigstoreSigned", "keyPath": pub}
	if identity != nil {
		r["signedIdentity"] = identity
	}
	return r
}

var matchRepository = map[string]any{"type": "matchRepository"}

// sigCase is one image and what the oracle and pullgate must decide about it.
type sigCase struct {
	name, repo string
	// requirement is the repository's policy scope.
	requirement map[string]any
	// noAttachments turns use-sigstore-attachments off for the repository.
	noAttachments bool
	// sign pushes the image (as repo:v1) and signs it.
	sign func(t *testing.T)
	// oracle and pullgate are the verdicts; they differ only for a documented difference.
	oracle, pullgate verdict
	// reason is a fragment of both rejection messages (pullgate's DENIED message and the
	// oracle's error), when they deny.
	reason string
	// acceptedBy is a fragment of pullgate's logged reason when it accepts: which
	// signature did.
	acceptedBy string
}

// runSigCases signs every case's image, starts pullgate with a policy holding every
// case's scope, and checks each case as a subtest.
func runSigCases(t *testing.T, reg *harness.Registry, cases []sigCase) *sigEnv {
	t.Helper()
	env := prepareSigCases(t, reg, cases)
	env.checkAll(t, cases)
	return env
}

// prepareSigCases signs every case's image and starts pullgate with a policy holding
// every case's scope.
func prepareSigCases(t *testing.T, reg *harness.Registry, cases []sigCase) *sigEnv {
	t.Helper()
	var scopes []sigScope
	var off []string
	for _, c := range cases {
		scopes = append(scopes, sigScope{repo: c.repo, requirement: c.requirement})
		if c.noAttachments {
			off = append(off, c.repo)
		}
		c.sign(t)
	}
	return newSigEnv(t, reg, scopes, off...)
}

// checkAll checks each case as a subtest.
func (e *sigEnv) checkAll(t *testing.T, cases []sigCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { e.check(t, c) })
	}
}

// check runs the oracle against the upstream and the clients against pullgate.
func (e *sigEnv) check(t *testing.T, c sigCase) {
	t.Helper()
	o := e.oracle.Pull(t, e.policy, e.regd, "docker://"+e.reg.Host+"/"+c.repo+":v1")
	got := e.pullThrough(t, c.repo, "v1")
	t.Logf("oracle: exit %d %s", o.Code, o.Output)
	t.Logf("pullgate: %d %s", got.status, got.message)
	if ov := oracleVerdict(o); ov != c.oracle {
		t.Errorf("oracle: %s (exit %d: %s), want %s", ov, o.Code, o.Output, c.oracle)
	}
	if got.verdict != c.pullgate {
		t.Errorf("pullgate: %s (%d %s), want %s", got.verdict, got.status, got.message, c.pullgate)
	}
	if c.reason != "" {
		// pullgate words its reasons in lower case.
		if c.oracle == deny && !strings.Contains(strings.ToLower(o.Output), strings.ToLower(c.reason)) {
			t.Errorf("the oracle's rejection %q does not say %q", o.Output, c.reason)
		}
		if c.pullgate == deny && !strings.Contains(strings.ToLower(got.message), strings.ToLower(c.reason)) {
			t.Errorf("pullgate's denial %q does not say %q", got.message, c.reason)
		}
	}
	got.checkClients(t)
	logged := map[verdict]string{accept: "accept", deny: "deny", undecided: "error"}[c.pullgate]
	d := e.lastDecision(t, c.repo)
	t.Logf("pullgate's decision: %s %s", d.Verdict, d.Reason)
	if d.Verdict != logged {
		t.Errorf("pullgate logged the verdict %q (%s), want %q", d.Verdict, d.Reason, logged)
	}
	if c.acceptedBy != "" && !strings.Contains(d.Reason, c.acceptedBy) {
		t.Errorf("pullgate accepted because %q, want %q", d.Reason, c.acceptedBy)
	}
}

// imageDigest resolves repo:tag on the registry.
func imageDigest(t *testing.T, reg *harness.Registry, repoTag string) string {
	t.Helper()
	return strings.TrimSpace(harness.Crane(t, "digest", reg.Host+"/"+repoTag))
}

// verdict is a decision both sides can reach: accept, deny, or could not decide.
type verdict string

const (
	accept    verdict = "accept"
	deny      verdict = "deny"
	undecided verdict = "undecided"
)

// oracleVerdict maps policypull's exit status.
func oracleVerdict(v harness.OracleVerdict) verdict {
	switch v.Code {
	case harness.OracleAccepted:
		return accept
	case harness.OracleRejected:
		return deny
	}
	return undecided
}

// pullgateResult is what pullgate answered for one image, and how two real clients fared
// pulling it through pullgate.
type pullgateResult struct {
	verdict verdict
	// status and message are pullgate's answer to a manifest GET (the OCI error message
	// when it refused).
	status  int
	message string
	// crane and skopeo are the clients' errors (nil when they pulled the image).
	crane, skopeo error
	craneOut      string
	skopeoOut     string
}

// manifestAccept is what clients send; pullgate must answer any of them.
var manifestAccept = strings.Join([]string{
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
}, ", ")

// pullThrough asks pullgate for repo:tag's manifest, then pulls the image through it
// with crane and skopeo.
func (e *sigEnv) pullThrough(t *testing.T, repo, tag string) pullgateResult {
	t.Helper()
	r := e.ask(t, repo, tag)
	ref := e.pg.Host + "/" + repo + ":" + tag
	home := t.TempDir()
	var stdout string
	stdout, r.craneOut, r.crane = harness.Run(t, harness.ToolTimeout, []string{"HOME=" + home, "DOCKER_CONFIG=" + home},
		"crane", "pull", "--insecure", ref, filepath.Join(home, "image.tar"))
	r.craneOut += stdout
	stdout, r.skopeoOut, r.skopeo = harness.SkopeoRun(t, harness.SkopeoOptions{}, "copy", "--src-tls-verify=false",
		"docker://"+ref, "oci:"+filepath.Join(t.TempDir(), "layout")+":"+tag)
	r.skopeoOut += stdout
	return r
}

// ask GETs repo:tag's manifest from pullgate (default-upstream routing, as docker's
// registry-mirrors do) and reads the verdict from the answer.
func (e *sigEnv) ask(t *testing.T, repo, tag string) pullgateResult {
	t.Helper()
	var r pullgateResult
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+e.pg.Host+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	r.status = resp.StatusCode
	switch r.status {
	case http.StatusOK:
		r.verdict = accept
	case http.StatusForbidden:
		r.verdict, r.message = deny, sigErrorMessage(t, body, "DENIED")
	case http.StatusServiceUnavailable:
		r.verdict, r.message = undecided, sigErrorMessage(t, body, "UNAVAILABLE")
	default:
		t.Fatalf("pullgate answered %s for %s:%s: %s", resp.Status, repo, tag, body)
	}
	return r
}

// sigErrorMessage checks that body is an OCI error with code and returns its message.
func sigErrorMessage(t *testing.T, body []byte, code string) string {
	t.Helper()
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 || e.Errors[0].Code != code {
		t.Fatalf("want an OCI error %s, got %q", code, body)
	}
	return e.Errors[0].Message
}

// checkClients fails unless both clients succeeded (accept) or both failed with
// pullgate's answer (deny, undecided).
func (r pullgateResult) checkClients(t *testing.T) {
	t.Helper()
	if r.verdict == accept {
		if r.crane != nil || r.skopeo != nil {
			t.Errorf("pullgate accepted the manifest but a client failed:\ncrane: %v %s\nskopeo: %v %s", r.crane, r.craneOut, r.skopeo, r.skopeoOut)
		}
		return
	}
	if r.crane == nil || r.skopeo == nil {
		t.Errorf("pullgate answered %d but a client pulled the image: crane err %v, skopeo err %v", r.status, r.crane, r.skopeo)
	}
	// crane prints the OCI error code; skopeo 1.9 the message, in a logrus line that
	// escapes quotes.
	if r.crane != nil && !strings.Contains(r.craneOut, map[verdict]string{deny: "DENIED", undecided: "UNAVAILABLE"}[r.verdict]) {
		t.Errorf("crane failed without pullgate's error code:\n%s", r.craneOut)
	}
	// skopeo 1.9 reports a 503 by its status line, not its body.
	want := map[verdict]string{deny: r.message, undecided: "503 Service Unavailable"}[r.verdict]
	if r.skopeo != nil && !strings.Contains(strings.ReplaceAll(r.skopeoOut, `\"`, `"`), want) {
		t.Errorf("skopeo failed without %q:\n%s", want, r.skopeoOut)
	}
}

// decision is pullgate's last "decision" log line for a manifest of repo.
type decision struct {
	Verdict, Reason string
}

func (e *sigEnv) lastDecision(t *testing.T, repo string) decision {
	t.Helper()
	// pullgate logs the decision before it answers, but its stderr is read concurrently:
	// wait for the line. Every request of a case gets the same verdict, so the newest line
	// read so far is as good as the newest written.
	deadline := time.Now().Add(decisionLogWait)
	for {
		for i, entries := 0, e.pg.LogEntries("decision"); i < len(entries); i++ {
			entry := entries[len(entries)-1-i]
			if entry["kind"] == "manifest" && entry["repository"] == repo {
				var d decision
				d.Verdict, _ = entry["verdict"].(string)
				d.Reason, _ = entry["reason"].(string)
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pullgate logged no decision for a manifest of %s within %s", repo, decisionLogWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// decisionLogWait bounds the wait for a decision line pullgate has already written.
const decisionLogWait = 30 * time.Second
