package integration

// The operations contract through the binary: TLS and mutual TLS (crane and skopeo
// trusting a CA made in the test), certificate rotation without a restart, htpasswd
// basic auth (skopeo --creds, crane with a docker config), Prometheus metrics parsed with
// expfmt, /healthz and /readyz, reload on file change (rename and a ConfigMap-like
// symlink swap), the audit file with logrotate's two ways, warn scopes, and the listener
// limits (ops_listener_test.go).

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/crypto/bcrypt"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/testsupport"
)

func TestOperations(t *testing.T) {
	t.Parallel()
	// The throttle passes everything through until the listener test paces one layer.
	th := harness.NewThrottle()
	w := newEnforceWorldWith(t, harness.WithMiddleware(th.Middleware))
	t.Cleanup(th.Release)
	digests := map[string]v1.Hash{}
	var signed, unsigned, warned v1.Hash
	var streamed streamedImage
	parallel(t, "set-up", map[string]func(*testing.T){
		"build":    w.build(t.TempDir()),
		"signed":   func(t *testing.T) { signed = w.signedImage(t, "ops/app", w.trusted, fullName("ops/app")+":v1") },
		"unsigned": func(t *testing.T) { unsigned = w.image(t, "ops/unsigned") },
		"warned":   func(t *testing.T) { warned = w.image(t, "warn/app") },
		"streamed": func(t *testing.T) { streamed = w.newStreamedImage(t) },
	})
	digests["ops/app"], digests["ops/unsigned"], digests["warn/app"] = signed, unsigned, warned

	t.Run("tls and rotation", func(t *testing.T) { testTLS(t, w, signed) })
	t.Run("mutual tls", func(t *testing.T) { testMutualTLS(t, w, signed) })
	t.Run("basic auth", func(t *testing.T) { testBasicAuth(t, w, signed) })
	t.Run("failed logins limited", func(t *testing.T) { testFailedLoginLimit(t, w, signed) })
	t.Run("bad files at start-up", func(t *testing.T) { testOpsStartupErrors(t, w) })
	t.Run("metrics and health", func(t *testing.T) { testMetrics(t, w, digests) })
	t.Run("reload by rename", func(t *testing.T) { testReloadRename(t, w, signed) })
	t.Run("reload by symlink swap", func(t *testing.T) { testReloadSymlinkSwap(t, w, signed) })
	t.Run("audit file", func(t *testing.T) { testAudit(t, w, digests) })
	t.Run("warn scopes", func(t *testing.T) { testWarn(t, w, digests) })
	t.Run("listener limits", func(t *testing.T) { testListenerLimits(t, w, th, streamed) })
}

// opsConfig is the world's configuration with extra YAML.
func opsConfig(t *testing.T, w *enforceWorld, policy, extra string) string {
	t.Helper()
	return harness.WritePullgateConfig(t, harness.PullgateConfig{
		Upstreams:       []harness.Upstream{{Registry: upstreamName, URL: w.reg.URL}},
		DefaultUpstream: upstreamName, Policy: policy, RegistriesD: w.sig.RegistriesD, Extra: extra,
	})
}

// crane runs crane with env and returns its error and stderr.
func crane(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	_, errOut, err := harness.Run(t, harness.ToolTimeout, env, "crane", args...)
	return errOut, err
}

// writeRename writes data to path through a temporary file renamed over it, as editors
// and rotation tools do.
func writeRename(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// servedCert returns the leaf certificate pullgate presents.
func servedCert(t *testing.T, host string, roots *x509.CertPool) (*x509.Certificate, error) {
	t.Helper()
	conn, err := tls.Dial("tcp", host, &tls.Config{RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// testTLS: crane and skopeo pull over HTTPS trusting the test CA; plain HTTP and TLS
// 1.1 are refused; a new certificate renamed into place is served without a restart;
// a broken one is refused and the running one stays.
func testTLS(t *testing.T, w *enforceWorld, want v1.Hash) {
	dir, certDir := t.TempDir(), t.TempDir()
	ca := harness.NewServingCA(t, "pullgate test CA")
	testsupport.WriteFile(t, filepath.Join(certDir, "ca.crt"), string(ca.PEM()))
	first := ca.Issue(t, dir, "server", false)
	pg := harness.StartPullgate(t, w.bin, opsConfig(t, w, w.policy,
		fmt.Sprintf("tls:\n  certFile: %q\n  keyFile: %q\n", first.CertFile, first.KeyFile)))
	ref := pg.Host + "/" + fullName("ops/app") + ":v1"

	env := []string{"SSL_CERT_FILE=" + filepath.Join(certDir, "ca.crt")}
	if errOut, err := crane(t, env, "digest", ref); err != nil {
		t.Fatalf("crane over TLS: %v\n%s", err, errOut)
	}
	harness.SkopeoPullOK(t, harness.SkopeoOptions{}, want, "--src-cert-dir", certDir, "docker://"+ref)
	// Without the CA, the certificate is not trusted.
	if _, err := crane(t, []string{"SSL_CERT_FILE=" + filepath.Join(dir, "server.pem.absent")}, "digest", ref); err == nil {
		t.Error("crane trusted pullgate without the test CA")
	}
	// Plain HTTP to the TLS port gets no registry answer.
	if resp, err := http.Get("http://" + pg.Host + "/v2/"); err == nil {
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered 200 on the TLS listener")
		}
		resp.Body.Close()
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if conn, err := tls.Dial("tcp", pg.Host, &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS11}); err == nil {
		conn.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}

	// Rotation: a new certificate renamed over the old one.
	second := ca.Issue(t, t.TempDir(), "server", false)
	writeRename(t, first.KeyFile, second.KeyPEM)
	writeRename(t, first.CertFile, second.CertPEM)
	waitServedSerial(t, pg.Host, roots, second.Cert.SerialNumber.String())
	if errOut, err := crane(t, env, "digest", ref); err != nil {
		t.Fatalf("crane after rotation: %v\n%s", err, errOut)
	}

	// A broken certificate is refused; the second one stays in force.
	n := len(pg.LogEntries("failed to reload the TLS or htpasswd files; the running ones stay in force"))
	writeRename(t, first.CertFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"))
	line := pg.WaitLog(t, "failed to reload the TLS or htpasswd files; the running ones stay in force", n)
	if msg, _ := line["err"].(string); !strings.Contains(msg, "tls.certFile") {
		t.Errorf("reload error %v does not name tls.certFile", line)
	}
	if c, err := servedCert(t, pg.Host, roots); err != nil || c.SerialNumber.Cmp(second.Cert.SerialNumber) != 0 {
		t.Errorf("after a broken certificate: %v, serial %v", err, c)
	}
}

// waitServedSerial waits until pullgate presents the certificate with serial.
func waitServedSerial(t *testing.T, host string, roots *x509.CertPool, serial string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := servedCert(t, host, roots)
		if err == nil && c.SerialNumber.String() == serial {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rotated certificate (serial %s) is not served: %v %v", serial, err, c)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testMutualTLS: with tls.clientCAFile, skopeo with a client certificate pulls; a client
// without one, or with one from another CA, is refused in the handshake and reaches
// nothing upstream.
func testMutualTLS(t *testing.T, w *enforceWorld, want v1.Hash) {
	dir := t.TempDir()
	ca := harness.NewServingCA(t, "pullgate test CA")
	clients := harness.NewServingCA(t, "pullgate clients CA")
	server := ca.Issue(t, dir, "server", false)
	testsupport.WriteFile(t, filepath.Join(dir, "clients.pem"), string(clients.PEM()))
	pg := harness.StartPullgate(t, w.bin, opsConfig(t, w, w.policy,
		fmt.Sprintf("tls:\n  certFile: %q\n  keyFile: %q\n  clientCAFile: %q\n", server.CertFile, server.KeyFile, filepath.Join(dir, "clients.pem"))))
	ref := pg.Host + "/" + fullName("ops/app") + ":v1"

	// skopeo's cert dir: ca.crt to trust, client.cert and client.key to present.
	certDir := t.TempDir()
	testsupport.WriteFile(t, filepath.Join(certDir, "ca.crt"), string(ca.PEM()))
	client := clients.Issue(t, t.TempDir(), "client", true)
	testsupport.WriteFile(t, filepath.Join(certDir, "client.cert"), string(client.CertPEM))
	testsupport.WriteFile(t, filepath.Join(certDir, "client.key"), string(client.KeyPEM))
	harness.SkopeoPullOK(t, harness.SkopeoOptions{}, want, "--src-cert-dir", certDir, "docker://"+ref)

	before := len(w.reg.Requests())
	noCert := t.TempDir()
	testsupport.WriteFile(t, filepath.Join(noCert, "ca.crt"), string(ca.PEM()))
	if _, errOut, err := harness.SkopeoRun(t, harness.SkopeoOptions{}, "inspect", "--raw", "--cert-dir", noCert, "docker://"+ref); err == nil {
		t.Errorf("skopeo without a client certificate was served:\n%s", errOut)
	}
	if errOut, err := crane(t, []string{"SSL_CERT_FILE=" + filepath.Join(certDir, "ca.crt")}, "digest", ref); err == nil {
		t.Errorf("crane without a client certificate was served:\n%s", errOut)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	other := harness.NewServingCA(t, "someone else").Issue(t, t.TempDir(), "intruder", true)
	pair, err := tls.X509KeyPair(other.CertPEM, other.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]*tls.Config{
		"no certificate":             {RootCAs: roots},
		"a certificate of other CAs": {RootCAs: roots, Certificates: []tls.Certificate{pair}},
	} {
		conn, err := tls.Dial("tcp", pg.Host, cfg)
		if err == nil {
			// TLS 1.3 reports the refusal on the first read.
			_, _ = conn.Write([]byte("GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"))
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("%s: handshake error %v, want a certificate refusal", name, err)
		}
	}
	if after := len(w.reg.Requests()); after != before {
		t.Errorf("refused clients caused %d upstream requests", after-before)
	}
}

// htpasswdFile writes user:bcrypt(password) lines.
func htpasswdFile(t *testing.T, users map[string]string) string {
	t.Helper()
	var b strings.Builder
	for u, p := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	testsupport.WriteFile(t, path, b.String())
	return path
}

// testBasicAuth: every request without valid credentials is 401 with the basic challenge
// and an UNAUTHORIZED body, and reaches no upstream; skopeo --creds and crane (docker
// config) pull; the user is in the access and decision lines, the password nowhere; a
// changed htpasswd file is picked up.
func testBasicAuth(t *testing.T, w *enforceWorld, want v1.Hash) {
	const password = "correct horse battery staple"
	hp := htpasswdFile(t, map[string]string{"alice": password})
	pg := harness.StartPullgate(t, w.bin, opsConfig(t, w, w.policy, fmt.Sprintf("auth:\n  htpasswd: %q\n", hp)))
	base := "http://" + pg.Host + "/v2/"
	manifest := base + fullName("ops/app") + "/manifests/v1"

	before := len(w.reg.Requests())
	for _, c := range []struct{ name, auth string }{
		{"none", ""},
		{"wrong password", basic("alice", "wrong")},
		{"unknown user", basic("mallory", password)},
		{"not basic", "Bearer " + password},
		{"oversized", "Basic " + strings.Repeat("A", 4096)},
	} {
		for _, u := range []string{base, manifest, base + fullName("ops/app") + "/blobs/" + want.String(), base + fullName("ops/app") + "/tags/list"} {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			resp.Body.Close()
			a := answer{status: resp.StatusCode, header: resp.Header, body: body.Bytes()}
			if a.status != http.StatusUnauthorized || a.header.Get("WWW-Authenticate") != `Basic realm="pullgate"` ||
				a.oneError(t).Code != "UNAUTHORIZED" {
				t.Errorf("%s, %s: %d %v %s", c.name, u, a.status, a.header, a.body)
			}
		}
	}
	if after := len(w.reg.Requests()); after != before {
		t.Errorf("unauthenticated requests caused %d upstream requests", after-before)
	}

	ref := pg.Host + "/" + fullName("ops/app") + ":v1"
	harness.SkopeoPullOK(t, harness.SkopeoOptions{}, want, "--src-tls-verify=false", "--src-creds", "alice:"+password, "docker://"+ref)
	if _, _, err := harness.SkopeoRun(t, harness.SkopeoOptions{}, "inspect", "--raw", "--tls-verify=false",
		"--creds", "alice:wrong", "docker://"+ref); err == nil {
		t.Error("skopeo with a wrong password was served")
	}
	cfgDir := t.TempDir()
	testsupport.WriteFile(t, filepath.Join(cfgDir, "config.json"), fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, pg.Host,
		base64.StdEncoding.EncodeToString([]byte("alice:"+password))))
	if errOut, err := crane(t, []string{"DOCKER_CONFIG=" + cfgDir}, "pull", "--insecure", ref, filepath.Join(t.TempDir(), "img.tar")); err != nil {
		t.Fatalf("crane with a docker config: %v\n%s", err, errOut)
	}
	// crane auth login writes the same config.
	loginDir := t.TempDir()
	if errOut, err := crane(t, []string{"DOCKER_CONFIG=" + loginDir}, "auth", "login", pg.Host, "-u", "alice", "-p", password); err != nil {
		t.Fatalf("crane auth login: %v\n%s", err, errOut)
	}
	if errOut, err := crane(t, []string{"DOCKER_CONFIG=" + loginDir}, "digest", "--insecure", ref); err != nil {
		t.Fatalf("crane after auth login: %v\n%s", err, errOut)
	}

	// podman login, then pull with the stored credentials.
	pod := harness.NewPodman(t, fmt.Sprintf("\n[[registry]]\nlocation = %q\ninsecure = true\n", pg.Host))
	if _, errOut, err := pod.Run(t, "login", "--tls-verify=false", "-u", "alice", "-p", password, pg.Host); err != nil {
		t.Fatalf("podman login: %v\n%s", err, errOut)
	}
	if _, errOut, err := pod.Pull(t, ref); err != nil {
		t.Fatalf("podman pull after login: %v\n%s", err, errOut)
	}
	if got := pod.ImageDigest(t, ref); got != want.String() {
		t.Errorf("podman pulled %q, want %s", got, want)
	}

	if len(decisions(pg, "ops/app", "")) == 0 {
		t.Fatal("no decisions logged")
	}
	for _, d := range decisions(pg, "ops/app", "") {
		if d["user"] != "alice" {
			t.Errorf("decision line without the user: %v", d)
		}
	}
	requests := 0
	for _, e := range pg.LogEntries("request") {
		if strings.Contains(e["path"].(string), "ops/app") && e["status"] != float64(401) {
			requests++
			if e["user"] != "alice" {
				t.Errorf("access line without the user: %v", e)
			}
		}
	}
	if requests == 0 {
		t.Error("no authenticated access lines")
	}
	if strings.Contains(pg.Logs.String(), password) || strings.Contains(pg.Logs.String(), base64.StdEncoding.EncodeToString([]byte("alice:"+password))) {
		t.Error("the password is in the log")
	}

	// A new htpasswd file (bob only) is picked up: alice is refused, bob served.
	n := len(pg.LogEntries("TLS and htpasswd files reloaded"))
	h, _ := bcrypt.GenerateFromPassword([]byte("bobs secret"), bcrypt.MinCost)
	writeRename(t, hp, []byte("bob:"+string(h)+"\n"))
	pg.WaitLog(t, "TLS and htpasswd files reloaded", n)
	if a := callAuth(t, manifest, basic("alice", password)); a.status != http.StatusUnauthorized {
		t.Errorf("alice after her removal: %d", a.status)
	}
	callAuth(t, manifest, basic("bob", "bobs secret")).served(t, "bob", want)
	// An MD5 entry at reload is refused; bob stays.
	writeRename(t, hp, []byte("bob:$apr1$abcdefgh$0123456789012345678901\n"))
	line := pg.WaitLog(t, "failed to reload the TLS or htpasswd files; the running ones stay in force", 0)
	if msg, _ := line["err"].(string); !strings.Contains(msg, "auth.htpasswd") || !strings.Contains(msg, "line 1") || strings.Contains(msg, "abcdefgh") {
		t.Errorf("reload error %q", msg)
	}
	callAuth(t, manifest, basic("bob", "bobs secret")).served(t, "bob after a refused reload", want)
}

// testFailedLoginLimit: the attack is a flood of guessed passwords, each costing pullgate
// a bcrypt comparison. With auth.failedLoginsPerMinute 5, a sixth wrong password from one
// address within the minute is 429 TOOMANYREQUESTS with Retry-After (12 s: one failure
// back every 60/5 s), logged once; so is a right password never checked before (no
// comparison runs, so the limit is no oracle). Credentials that passed before the flood
// still pull with skopeo, also after a SIGHUP with the htpasswd file unchanged, and a
// request without credentials still gets the challenge.
func testFailedLoginLimit(t *testing.T, w *enforceWorld, want v1.Hash) {
	hp := htpasswdFile(t, map[string]string{"alice": "alice pw", "bob": "bob pw"})
	pg := harness.StartPullgate(t, w.bin, opsConfig(t, w, w.policy,
		fmt.Sprintf("auth:\n  htpasswd: %q\n  failedLoginsPerMinute: 5\n", hp)))
	manifest := "http://" + pg.Host + "/v2/" + fullName("ops/app") + "/manifests/v1"
	callAuth(t, manifest, basic("alice", "alice pw")).served(t, "alice before the flood", want)
	for i := range 5 {
		if a := callAuth(t, manifest, basic("alice", fmt.Sprintf("guess %d", i))); a.status != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i+1, a.status)
		}
	}
	for _, c := range []struct{ name, auth string }{
		{"sixth guess", basic("alice", "guess 6")},
		{"unknown user", basic("mallory", "x")},
		{"bob's right password, never checked", basic("bob", "bob pw")},
	} {
		a := callAuth(t, manifest, c.auth)
		if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") != "12" || a.oneError(t).Code != "TOOMANYREQUESTS" {
			t.Errorf("%s: %d %v %s", c.name, a.status, a.header, a.body)
		}
	}
	if a := callAuth(t, manifest, ""); a.status != http.StatusUnauthorized || a.header.Get("WWW-Authenticate") != `Basic realm="pullgate"` {
		t.Errorf("no credentials while limited: %d %v", a.status, a.header)
	}
	callAuth(t, manifest, basic("alice", "alice pw")).served(t, "alice's remembered credentials while limited", want)
	harness.SkopeoPullOK(t, harness.SkopeoOptions{}, want, "--src-tls-verify=false", "--src-creds", "alice:alice pw",
		"docker://"+pg.Host+"/"+fullName("ops/app")+":v1")
	// A SIGHUP (or an edited policy or key file) reloads the htpasswd file too; unchanged,
	// it forgets nobody: alice keeps pulling while her address is still limited.
	n := len(pg.LogEntries("TLS and htpasswd files reloaded"))
	pg.Reload(t)
	pg.WaitLog(t, "TLS and htpasswd files reloaded", n)
	callAuth(t, manifest, basic("alice", "alice pw")).served(t, "alice's remembered credentials after a SIGHUP", want)
	if lines := pg.LogEntries("failed logins limited"); len(lines) != 1 || lines[0]["client"] != "127.0.0.1" {
		t.Errorf("limit log lines %v, want one naming 127.0.0.1", lines)
	}
	if strings.Contains(pg.Logs.String(), "bob pw") || strings.Contains(pg.Logs.String(), "guess") {
		t.Error("a password is in the log")
	}
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// callAuth is call with an Authorization header.
func callAuth(t *testing.T, url, auth string) answer {
	t.Helper()
	return callWith(t, http.DefaultClient, http.MethodGet, url, http.Header{"Authorization": {auth}})
}

// testOpsStartupErrors: a missing certificate, key, CA or htpasswd file, or an htpasswd
// with another hash kind, stops the start-up with an error naming the key (and the
// line, never the hash).
func testOpsStartupErrors(t *testing.T, w *enforceWorld) {
	dir := t.TempDir()
	ca := harness.NewServingCA(t, "ca")
	srv := ca.Issue(t, dir, "server", false)
	md5 := filepath.Join(dir, "md5")
	testsupport.WriteFile(t, md5, "# users\nalice:$apr1$abcdefgh$0123456789012345678901\n")
	garbage := filepath.Join(dir, "garbage.pem")
	testsupport.WriteFile(t, garbage, "not a certificate\n")
	for _, c := range []struct{ name, extra, want, never string }{
		{"missing certificate", fmt.Sprintf("tls:\n  certFile: %q\n  keyFile: %q\n", filepath.Join(dir, "nope.pem"), srv.KeyFile), "tls.certFile", ""},
		{"missing key", fmt.Sprintf("tls:\n  certFile: %q\n  keyFile: %q\n", srv.CertFile, filepath.Join(dir, "nope.key")), "tls.keyFile", ""},
		{"missing CA", fmt.Sprintf("tls:\n  certFile: %q\n  keyFile: %q\n  clientCAFile: %q\n", srv.CertFile, srv.KeyFile, filepath.Join(dir, "nope-ca.pem")), "tls.clientCAFile", ""},
		{"garbage CA", fmt.Sprintf("tls:\n  certFile: %q\n  keyFile: %q\n  clientCAFile: %q\n", srv.CertFile, srv.KeyFile, garbage), "tls.clientCAFile", ""},
		{"key of another certificate", fmt.Sprintf("tls:\n  certFile: %q\n  keyFile: %q\n", srv.CertFile, ca.Issue(t, t.TempDir(), "other", false).KeyFile), "tls.certFile and tls.keyFile", ""},
		{"missing htpasswd", fmt.Sprintf("auth:\n  htpasswd: %q\n", filepath.Join(dir, "nope")), "auth.htpasswd", ""},
		{"md5 htpasswd", fmt.Sprintf("auth:\n  htpasswd: %q\n", md5), "auth.htpasswd|line 2: user|alice|the password is an MD5 (apr1) hash; only bcrypt entries are supported", "abcdefgh"},
	} {
		code, _, errOut := harness.RunPullgate(t, w.bin, "serve", "--config", opsConfig(t, w, w.policy, c.extra))
		missing := false
		for _, part := range strings.Split(c.want, "|") {
			missing = missing || !strings.Contains(errOut, part)
		}
		if code != 2 || missing || (c.never != "" && strings.Contains(errOut, c.never)) {
			t.Errorf("%s: exit %d, want 2 and %q (never %q) in:\n%s", c.name, code, c.want, c.never, errOut)
		}
	}
}

// scrape reads /metrics and parses it.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// metricValue sums the samples of family whose labels include labels.
func metricValue(fams map[string]*dto.MetricFamily, family string, labels map[string]string) (float64, bool) {
	f, ok := fams[family]
	if !ok {
		return 0, false
	}
	var sum float64
	found := false
next:
	for _, m := range f.GetMetric() {
		for k, v := range labels {
			match := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					match = true
				}
			}
			if !match {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum, found
}

// countLines counts the JSON log lines with msg for which keep is true.
func countLines(pg *harness.Pullgate, msg string, keep func(map[string]any) bool) int {
	n := 0
	for _, e := range pg.LogEntries(msg) {
		if keep(e) {
			n++
		}
	}
	return n
}

// testMetrics: after known pulls, the counters agree with the decision and access
// lines; the upstream and latency families are there; /healthz and /readyz answer.
func testMetrics(t *testing.T, w *enforceWorld, digests map[string]v1.Hash) {
	pg := harness.StartPullgate(t, w.bin, opsConfig(t, w, w.policy, "metrics:\n  listen: 127.0.0.1:0\n"))
	addr, _ := pg.WaitLog(t, "metrics listening", 0)["addr"].(string)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %v %v", path, err, resp)
		}
		resp.Body.Close()
	}
	if resp, err := http.Get("http://" + pg.Host + "/metrics"); err == nil {
		if resp.StatusCode == http.StatusOK {
			t.Error("/metrics is served on the proxy listener")
		}
		resp.Body.Close()
	}

	ref := pg.Host + "/" + fullName("ops/app") + ":v1"
	if errOut, err := crane(t, nil, "pull", "--insecure", ref, filepath.Join(t.TempDir(), "img.tar")); err != nil {
		t.Fatalf("crane pull: %v\n%s", err, errOut)
	}
	call(t, http.MethodGet, "http://"+pg.Host+"/v2/"+fullName("ops/unsigned")+"/manifests/v1").denied(t, "unsigned")
	call(t, http.MethodGet, "http://"+pg.Host+"/v2/"+fullName("ops/app")+"/manifests/v1").served(t, "again", digests["ops/app"])
	// Timing the policy keeps its listing refusal: a reject scope's tags stay hidden.
	call(t, http.MethodGet, "http://"+pg.Host+"/v2/"+fullName("rejected/app")+"/tags/list").denied(t, "tags of a reject scope")

	verdicts := func(v string) int {
		return countLines(pg, "decision", func(e map[string]any) bool { return e["verdict"] == v })
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams := scrape(t, addr)
		accept, _ := metricValue(fams, "pullgate_decisions_total", map[string]string{"verdict": "accept"})
		deny, _ := metricValue(fams, "pullgate_decisions_total", map[string]string{"verdict": "deny"})
		errs, errFound := metricValue(fams, "pullgate_decisions_total", map[string]string{"verdict": "error"})
		requests, _ := metricValue(fams, "pullgate_http_requests_total", nil)
		forbidden, _ := metricValue(fams, "pullgate_http_requests_total", map[string]string{"code": "403"})
		lines := countLines(pg, "request", func(map[string]any) bool { return true })
		ok := int(accept) == verdicts("accept") && int(deny) == verdicts("deny") && int(requests) == lines
		if ok {
			if accept < 2 || deny != 1 || forbidden != 2 || !errFound || errs != 0 { // 403s: the denial and the listing
				t.Errorf("accept %v deny %v error %v (found %v) 403s %v", accept, deny, errs, errFound, forbidden)
			}
			up, _ := metricValue(fams, "pullgate_upstream_requests_total", map[string]string{"upstream": upstreamName, "code": "200"})
			if up == 0 {
				t.Error("no pullgate_upstream_requests_total{code=200} for the upstream")
			}
			for _, c := range []struct {
				family string
				labels map[string]string
			}{
				{"pullgate_http_request_duration_seconds", map[string]string{"endpoint": "manifest"}},
				{"pullgate_http_request_duration_seconds", map[string]string{"endpoint": "blob"}},
				{"pullgate_http_request_duration_seconds", map[string]string{"endpoint": "base"}},
				{"pullgate_upstream_request_duration_seconds", map[string]string{"upstream": upstreamName}},
				{"pullgate_signature_fetch_duration_seconds", nil},
				{"pullgate_policy_evaluation_duration_seconds", nil},
				{"pullgate_verdict_cache_total", map[string]string{"result": "hit"}},
				{"pullgate_verdict_cache_total", map[string]string{"result": "miss"}},
			} {
				if v, found := metricValue(fams, c.family, c.labels); !found || v == 0 {
					t.Errorf("%s%v: %v (found %v)", c.family, c.labels, v, found)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never agreed with the log: accept %v/%d deny %v/%d requests %v/%d",
				accept, verdicts("accept"), deny, verdicts("deny"), requests, lines)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// opsSignedBy is a policy requiring the key at keyPath for the whole upstream.
func opsSignedBy(keyPath string) string {
	return fmt.Sprintf(`{"default": [{"type": "reject"}], "transports": {"docker": {%q: [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": %q}]}}}`,
		upstreamName, keyPath)
}

// testReloadRename: a policy and a key file replaced by rename are picked up without a
// signal; a broken one is refused and the running one stays.
func testReloadRename(t *testing.T, w *enforceWorld, want v1.Hash) {
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.json")
	key := filepath.Join(dir, "key.gpg")
	trusted, err := os.ReadFile(w.trusted.PublicKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	untrusted, err := os.ReadFile(w.untrusted.PublicKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	testsupport.WriteFile(t, key, string(trusted))
	testsupport.WriteFile(t, policy, `{"default": [{"type": "reject"}]}`)
	pg := harness.StartPullgate(t, w.bin, opsConfig(t, w, policy, ""))
	url := "http://" + pg.Host + "/v2/" + fullName("ops/app") + "/manifests/v1"
	call(t, http.MethodGet, url).denied(t, "under reject")

	writeRename(t, policy, []byte(opsSignedBy(key)))
	pg.WaitLog(t, "policy reloaded", 0)
	call(t, http.MethodGet, url).served(t, "after the policy was renamed into place", want)

	// The key file the policy names changes: the other key no longer accepts the image.
	writeRename(t, key, untrusted)
	pg.WaitLog(t, "policy reloaded", 1)
	call(t, http.MethodGet, url).denied(t, "after the key file changed")

	writeRename(t, key, trusted)
	pg.WaitLog(t, "policy reloaded", 2)
	call(t, http.MethodGet, url).served(t, "after the key file came back", want)

	writeRename(t, policy, []byte(`{"default": [`))
	pg.WaitLog(t, "failed to reload the policy; the previous policy stays in force", 0)
	call(t, http.MethodGet, url).served(t, "after a broken policy", want)
}

// testReloadSymlinkSwap: a Kubernetes-style ConfigMap folder (files are symlinks
// through ..data, which is swapped for a new folder) is picked up for the policy and
// registries.d alike.
func testReloadSymlinkSwap(t *testing.T, w *enforceWorld, want v1.Hash) {
	dir := t.TempDir()
	version := 0
	swap := func(policyJSON string) {
		t.Helper()
		version++
		data := filepath.Join(dir, fmt.Sprintf("..2026_12_02_%d", version))
		if err := os.Mkdir(data, 0o700); err != nil {
			t.Fatal(err)
		}
		testsupport.WriteFile(t, filepath.Join(data, "policy.json"), policyJSON)
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(filepath.Base(data), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		if version > 1 {
			if err := os.RemoveAll(filepath.Join(dir, fmt.Sprintf("..2026_12_02_%d", version-1))); err != nil {
				t.Fatal(err)
			}
		}
	}
	swap(`{"default": [{"type": "reject"}]}`)
	if err := os.Symlink("..data/policy.json", filepath.Join(dir, "policy.json")); err != nil {
		t.Fatal(err)
	}
	pg := harness.StartPullgate(t, w.bin, opsConfig(t, w, filepath.Join(dir, "policy.json"), ""))
	url := "http://" + pg.Host + "/v2/" + fullName("ops/app") + "/manifests/v1"
	call(t, http.MethodGet, url).denied(t, "under reject")

	swap(w.policyJSON())
	pg.WaitLog(t, "policy reloaded", 0)
	call(t, http.MethodGet, url).served(t, "after the ConfigMap swap", want)

	swap(`{"default": [{"type": "reject"}]}`)
	pg.WaitLog(t, "policy reloaded", 1)
	call(t, http.MethodGet, url).denied(t, "after swapping back")
}

// auditLines reads the audit file.
func auditLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil // moved away and not written again yet
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// waitAudit waits until path holds n lines.
func waitAudit(t *testing.T, path string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		lines := auditLines(t, path)
		if len(lines) >= n {
			if len(lines) > n {
				t.Fatalf("%d audit lines, want %d: %v", len(lines), n, lines)
			}
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d audit lines, want %d", len(lines), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testAudit: every decision is one JSON line, counted against the decision lines; the
// file is reopened after logrotate moved it away, and keeps working after copytruncate.
func testAudit(t *testing.T, w *enforceWorld, digests map[string]v1.Hash) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	pg := harness.StartPullgate(t, w.bin, opsConfig(t, w, w.policy, fmt.Sprintf("audit:\n  path: %q\n", path)))
	base := "http://" + pg.Host + "/v2/" + fullName("")
	call(t, http.MethodGet, base+"ops/app/manifests/v1").served(t, "signed", digests["ops/app"])
	call(t, http.MethodGet, base+"ops/unsigned/manifests/v1").denied(t, "unsigned")
	call(t, http.MethodGet, base+"ops/unsigned/blobs/"+digests["ops/unsigned"].String()).denied(t, "blob")
	lines := waitAudit(t, path, 3)
	pg.WaitLog(t, "decision", 2)
	logged := len(pg.LogEntries("decision"))
	if logged != 3 {
		t.Errorf("%d decision lines, %d audit lines", logged, len(lines))
	}
	want := []map[string]any{
		{"kind": "manifest", "verdict": "accept", "repository": "ops/app", "digest": digests["ops/app"].String(), "identity": fullName("ops/app") + ":v1", "enforced": true},
		{"kind": "manifest", "verdict": "deny", "repository": "ops/unsigned", "enforced": true, "requirement": "[0] signedBy"},
		{"kind": "blob", "verdict": "deny", "repository": "ops/unsigned", "enforced": true},
	}
	for i, wl := range want {
		for k, v := range wl {
			if lines[i][k] != v {
				t.Errorf("audit line %d: %s = %v, want %v (%v)", i, k, lines[i][k], v, lines[i])
			}
		}
		if lines[i]["time"] == nil || lines[i]["upstream"] != upstreamName {
			t.Errorf("audit line %d: %v", i, lines[i])
		}
	}

	// logrotate (create): the file is moved away; the next decisions go to a new file.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	call(t, http.MethodGet, base+"ops/unsigned/manifests/v1").denied(t, "after the move")
	waitAudit(t, path, 1)
	if old := auditLines(t, path+".1"); len(old) != 3 {
		t.Errorf("the moved file has %d lines, want 3", len(old))
	}

	// logrotate copytruncate: the file is copied, then truncated in place.
	call(t, http.MethodGet, base+"ops/unsigned/manifests/v1").denied(t, "before the truncation")
	waitAudit(t, path, 2)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	call(t, http.MethodGet, base+"ops/app/manifests/v1").served(t, "after the truncation", digests["ops/app"])
	lines = waitAudit(t, path, 1)
	raw, _ := os.ReadFile(path)
	if bytes.IndexByte(raw, 0) >= 0 || lines[0]["verdict"] != "accept" {
		t.Errorf("after copytruncate the file holds %q", raw)
	}
}

// testWarn: a denial in a warn scope is served (crane pulls the unsigned image, blobs
// included), logged verdict=deny enforced=false, audited and counted; outside the
// scope the same kind of image is refused.
func testWarn(t *testing.T, w *enforceWorld, digests map[string]v1.Hash) {
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	config := opsConfig(t, w, w.policy, fmt.Sprintf(
		"enforcement:\n  warn: [%q]\nmetrics:\n  listen: 127.0.0.1:0\naudit:\n  path: %q\n", fullName("warn"), audit))
	pg := harness.StartPullgate(t, w.bin, config)
	addr, _ := pg.WaitLog(t, "metrics listening", 0)["addr"].(string)
	ref := pg.Host + "/" + fullName("warn/app") + ":v1"
	if errOut, err := crane(t, nil, "pull", "--insecure", ref, filepath.Join(t.TempDir(), "img.tar")); err != nil {
		t.Fatalf("crane pull in a warn scope: %v\n%s", err, errOut)
	}
	d := waitDecisions(t, pg, "warn/app", "manifest", 1)[0]
	if d["verdict"] != "deny" || d["enforced"] != false || d["warnScope"] != fullName("warn") {
		t.Errorf("decision %v", d)
	}
	if n := len(decisions(pg, "warn/app", "blob")); n != 0 {
		t.Errorf("%d blob refusals of a warn-served image", n)
	}
	call(t, http.MethodGet, "http://"+pg.Host+"/v2/"+fullName("ops/unsigned")+"/manifests/v1").denied(t, "outside the warn scope")
	lines := waitAudit(t, audit, 2)
	if lines[0]["enforced"] != false || lines[0]["warnScope"] != fullName("warn") || lines[1]["enforced"] != true {
		t.Errorf("audit %v", lines)
	}
	// verify reports the policy's verdict, warn scope or not, and writes no audit line.
	if code, out, errOut := harness.RunPullgate(t, w.bin, "verify", "--config", config, fullName("warn/app")+":v1"); code != 1 {
		t.Errorf("verify in a warn scope: exit %d, want 1\n%s%s", code, out, errOut)
	}
	if n := len(auditLines(t, audit)); n != 2 {
		t.Errorf("%d audit lines after verify, want 2", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams := scrape(t, addr)
		warned, _ := metricValue(fams, "pullgate_warned_total", map[string]string{"scope": fullName("warn")})
		deny, _ := metricValue(fams, "pullgate_decisions_total", map[string]string{"verdict": "deny"})
		if warned == 1 && deny == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("warned %v, deny %v; want 1 and 2", warned, deny)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
