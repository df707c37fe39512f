package integration

// The enforcement as the binary shows it: routing forms, decision log lines, pullgate
// verify, and policy reload on SIGHUP. Subtests of TestEnforceEndToEnd.

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/testsupport"
)

// testRoutingParity: the prefix path, ns= and the default upstream reach the same
// image with the same identity and verdict (SPEC.md 10.7 #51); an ns= naming no
// configured registry reaches nothing.
func testRoutingParity(t *testing.T, w *enforceWorld, pg *harness.Pullgate, digests map[string]v1.Hash) {
	base := "http://" + pg.Host + "/v2/"
	for _, c := range []struct {
		repo    string
		allowed bool
	}{{"parity/ok", true}, {"parity/no", false}} {
		forms := []string{
			base + upstreamName + "/" + c.repo + "/manifests/v1",
			base + c.repo + "/manifests/v1?ns=" + upstreamName,
			base + c.repo + "/manifests/v1",
		}
		for i, u := range forms {
			a := call(t, http.MethodGet, u)
			if c.allowed {
				a.served(t, u, digests[c.repo])
			} else {
				a.denied(t, u)
			}
			d := waitDecisions(t, pg, c.repo, "", i+1)[i]
			verdict := map[bool]string{true: "accept", false: "deny"}[c.allowed]
			if d["identity"] != fullName(c.repo)+":v1" || d["upstream"] != upstreamName || d["verdict"] != verdict ||
				d["digest"] != digests[c.repo].String() {
				t.Errorf("%s: decision %v", u, d)
			}
		}
	}

	before := w.reg.Requests()
	a := call(t, http.MethodGet, base+"parity/evil/manifests/v1?ns=evil.example")
	if a.status != http.StatusNotFound || a.oneError(t).Code != "NAME_UNKNOWN" {
		t.Errorf("ns=evil.example: %d %s", a.status, a.body)
	}
	for _, r := range w.reg.Requests()[len(before):] {
		if strings.Contains(r.Path, "parity/evil") {
			t.Errorf("the upstream received %s %s", r.Method, r.Path)
		}
	}
	if d := decisions(pg, "parity/evil", ""); len(d) != 0 {
		t.Errorf("decisions about an unrouted request: %v", d)
	}
}

// testDecisionLog: one structured line per decision, with every field ENFORCE.md lists.
func testDecisionLog(t *testing.T, w *enforceWorld, pg *harness.Pullgate, digests map[string]v1.Hash) {
	base := "http://" + pg.Host + "/v2/" + upstreamName + "/"
	call(t, http.MethodGet, base+"logs/ok/manifests/v1").served(t, "logs/ok", digests["logs/ok"])
	call(t, http.MethodGet, base+"logs/no/manifests/v1").denied(t, "logs/no")
	call(t, http.MethodGet, base+"logs/ok/manifests/v1").served(t, "logs/ok again", digests["logs/ok"])
	ok := waitDecisions(t, pg, "logs/ok", "", 2)
	no := waitDecisions(t, pg, "logs/no", "", 1)[0]

	check := func(d map[string]any, want map[string]string) {
		t.Helper()
		for k, v := range want {
			if d[k] != v {
				t.Errorf("decision %s = %v, want %q (line %v)", k, d[k], v, d)
			}
		}
		for _, k := range []string{"time", "client", "duration", "reason"} {
			if d[k] == nil || d[k] == "" {
				t.Errorf("decision without %s: %v", k, d)
			}
		}
		if c, _ := d["client"].(string); !strings.HasPrefix(c, "127.0.0.1:") {
			t.Errorf("client = %v", d["client"])
		}
	}
	common := func(repo, verdict, requirement, cache string) map[string]string {
		return map[string]string{"level": "INFO", "kind": "manifest", "upstream": upstreamName, "repository": repo,
			"reference": "v1", "digest": digests[repo].String(), "identity": fullName(repo) + ":v1", "verdict": verdict,
			"scope": scopeUpstream, "requirement": requirement, "cache": cache}
	}
	// An accepted decision names the requirements that accepted (issue 8.10).
	check(ok[0], common("logs/ok", "accept", "[0] signedBy", "miss"))
	check(ok[1], common("logs/ok", "accept", "[0] signedBy", "hit"))
	check(no, common("logs/no", "deny", "[0] signedBy", "miss"))
	if r, _ := ok[0]["reason"].(string); !strings.Contains(strings.ToUpper(r), "IS SIGNED BY KEY "+strings.ToUpper(w.trusted.Fingerprint)) {
		t.Errorf("accept reason %q does not name the trusted key %s", r, w.trusted.Fingerprint)
	}
	if r, _ := no["reason"].(string); r != "a signature was required, but no signature exists" {
		t.Errorf("deny reason %q", r)
	}

	// A refused blob is a decision too.
	call(t, http.MethodGet, base+"logs/no/blobs/"+digests["logs/no"].String()).denied(t, "blob")
	blob := waitDecisions(t, pg, "logs/no", "", 2)[1]
	if blob["kind"] != "blob" || blob["verdict"] != "deny" || blob["digest"] != digests["logs/no"].String() {
		t.Errorf("blob decision %v", blob)
	}
}

// testVerifyCommand: `pullgate verify` gives serve's verdict, as text and JSON, with
// exit 0 accepted, 1 rejected, 2 undecided.
func testVerifyCommand(t *testing.T, w *enforceWorld, digests map[string]v1.Hash) {
	config := w.pullgateConfig(t, w.policy, w.sig.RegistriesD)

	code, out, errOut := harness.RunPullgate(t, w.bin, "verify", "--config", config, fullName("signed/app")+":v1")
	if code != 0 {
		t.Fatalf("verify signed: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"accepted " + fullName("signed/app") + ":v1", "digest:      " + digests["signed/app"].String(),
		"scope:       " + scopeUpstream, "requirement: [0] signedBy", "reason:      ", "is signed by key"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify signed output lacks %q:\n%s", want, out)
		}
	}

	code, out, errOut = harness.RunPullgate(t, w.bin, "verify", "--config", config, fullName("unsigned/app")+":v1")
	if code != 1 {
		t.Fatalf("verify unsigned: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"rejected " + fullName("unsigned/app") + ":v1", "digest:      " + digests["unsigned/app"].String(),
		"scope:       " + scopeUpstream, "requirement: [0] signedBy", "reason:      a signature was required, but no signature exists"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify unsigned output lacks %q:\n%s", want, out)
		}
	}

	code, out, errOut = harness.RunPullgate(t, w.bin, "verify", "--json", "--config", config, fullName("wrongkey/app")+":v1")
	if code != 1 {
		t.Fatalf("verify --json wrong key: exit %d\n%s%s", code, out, errOut)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("verify --json: %v\n%s", err, out)
	}
	for k, want := range map[string]string{"identity": fullName("wrongkey/app") + ":v1", "digest": digests["wrongkey/app"].String(),
		"verdict": "deny", "scope": scopeUpstream, "requirement": "[0] signedBy"} {
		if v[k] != want {
			t.Errorf("verify --json %s = %v, want %q", k, v[k], want)
		}
	}
	if r, _ := v["reason"].(string); !strings.Contains(r, "which is not trusted") {
		t.Errorf("verify --json reason %q", r)
	}

	// The same image with a lookaside nobody answers at: undecided, exit 2.
	downD := filepath.Join(t.TempDir(), "registries.d")
	if err := os.Mkdir(downD, 0o700); err != nil {
		t.Fatal(err)
	}
	testsupport.WriteFile(t, filepath.Join(downD, "default.yaml"), "default-docker:\n  lookaside: http://"+harness.ClosedAddr(t)+"\n")
	code, out, errOut = harness.RunPullgate(t, w.bin, "verify", "--config", w.pullgateConfig(t, w.policy, downD), fullName("signed/app")+":v1")
	if code != 2 || out != "" || !strings.Contains(errOut, "could not decide") || !strings.Contains(errOut, "lookaside") {
		t.Errorf("verify with the lookaside down: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
}

// testReload: SIGHUP puts a changed policy in force at once; a broken one is refused
// and the running one stays, with an error logged.
func testReload(t *testing.T, w *enforceWorld, want v1.Hash) {
	policy := filepath.Join(t.TempDir(), "policy.json")
	testsupport.WriteFile(t, policy, `{"default": [{"type": "reject"}]}`)
	pg := harness.StartPullgate(t, w.bin, w.pullgateConfig(t, policy, w.sig.RegistriesD))
	url := "http://" + pg.Host + "/v2/" + upstreamName + "/hup/app/manifests/"

	e := call(t, http.MethodGet, url+"v1").denied(t, "under the reject policy")
	if !strings.Contains(e.Message, "policy default requirement [0] reject") {
		t.Errorf("denial under the reject policy: %s", e.Message)
	}

	testsupport.WriteFile(t, policy, w.policyJSON())
	pg.Reload(t)
	call(t, http.MethodGet, url+"v1").served(t, "after reloading a signedBy policy", want)

	testsupport.WriteFile(t, policy, `{"default": [{"type": "insecureAcceptAnything"}], "transports": {"docker": {"x": [}}}`)
	pg.Signal(t, syscall.SIGHUP)
	line := pg.WaitLog(t, "failed to reload the policy; the previous policy stays in force", 0)
	if msg, _ := line["err"].(string); line["level"] != "ERROR" || !strings.Contains(msg, policy) {
		t.Errorf("reload error line %v", line)
	}
	// Not cached before: evaluated now, under the signedBy policy still in force.
	call(t, http.MethodGet, url+want.String()).served(t, "by digest after a refused reload", want)
	call(t, http.MethodGet, url+"v1").served(t, "by tag after a refused reload", want)
	if n := len(pg.LogEntries("policy reloaded")); n != 1 {
		t.Errorf("%d successful reloads logged, want 1", n)
	}
}
