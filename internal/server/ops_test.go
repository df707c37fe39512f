package server

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distribution/reference"
	"golang.org/x/crypto/bcrypt"

	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/policy"
	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/admission"
	"github.com/pullgate/pullgate/proxy/enforce"
)

// TestAuditRotation: lines are appended, a moved-away file is replaced by a new one, a
// truncated one is appended to from its start, and Close writes what is queued.
func TestAuditRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a, err := NewAudit(path, slog.New(slog.DiscardHandler), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	decide := func(repo string) {
		a.ObserveDecision(context.Background(), enforce.DecisionRecord{Kind: "manifest", Verdict: "deny", Repository: repo, Enforced: true})
	}
	wait := func(p string, n int) []AuditRecord {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			recs := readAudit(t, p)
			if len(recs) == n {
				return recs
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d records, want %d", p, len(recs), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	decide("a")
	decide("b")
	wait(path, 2)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	decide("c")
	if recs := wait(path, 1); recs[0].Repository != "c" {
		t.Fatalf("after the move: %+v", recs)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	decide("d")
	if recs := wait(path, 1); recs[0].Repository != "d" {
		t.Fatalf("after the truncation: %+v", recs)
	}
	decide("e")
	a.Close()
	if recs := readAudit(t, path); len(recs) != 2 || recs[1].Repository != "e" {
		t.Fatalf("after Close: %+v", recs)
	}
	decide("late") // dropped, no panic
}

// TestAuditNeverBlocks: with the writer stuck (the file's folder gone and the file
// unopenable), decisions are dropped and counted, not waited for.
func TestAuditNeverBlocks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "audit.jsonl")
	if err := os.Mkdir(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	var dropped, failed int
	a, err := NewAudit(path, slog.New(slog.DiscardHandler), func() { dropped++ }, func() { failed++ })
	if err != nil {
		t.Fatal(err)
	}
	// Replace the folder by a file: every reopen fails.
	if err := os.RemoveAll(filepath.Dir(path)); err != nil {
		t.Fatal(err)
	}
	testsupport.WriteFile(t, filepath.Dir(path), "")
	done := make(chan struct{})
	go func() {
		for i := 0; i < 3*auditBuffer; i++ {
			a.ObserveDecision(context.Background(), enforce.DecisionRecord{Kind: "blob", Verdict: "deny"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("decisions blocked on a failing audit file")
	}
	a.Close()
	if failed == 0 {
		t.Error("no failed write reported")
	}
	_ = dropped // depends on how fast the writer fails; the point is that nothing blocked
}

func readAudit(t *testing.T, path string) []AuditRecord {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []AuditRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r AuditRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// selfSigned writes a certificate and key for 127.0.0.1 to dir and returns their paths.
func selfSigned(t *testing.T, dir, name string, serial int64) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	testsupport.WriteFile(t, cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	testsupport.WriteFile(t, key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	return cert, key
}

// TestTLSFilesReload: a good pair rotates the served certificate; a bad one is refused
// naming its key, and the running one stays.
func TestTLSFilesReload(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir, "a", 1)
	tf, err := NewTLSFiles(config.TLS{CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	serial := func() int64 {
		c, err := tf.Config().GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf.SerialNumber.Int64()
	}
	if serial() != 1 || tf.Config().MinVersion < 0x0303 {
		t.Fatalf("serial %d, min version %x", serial(), tf.Config().MinVersion)
	}
	c2, k2 := selfSigned(t, dir, "b", 2)
	tf.files.CertFile, tf.files.KeyFile = c2, k2
	if err := tf.Reload(); err != nil || serial() != 2 {
		t.Fatalf("reload: %v, serial %d", err, serial())
	}
	testsupport.WriteFile(t, c2, []byte("garbage"))
	if err := tf.Reload(); err == nil || !strings.Contains(err.Error(), "tls.certFile") || serial() != 2 {
		t.Fatalf("reload of garbage: %v, serial %d", err, serial())
	}
	if _, err := NewTLSFiles(config.TLS{CertFile: cert, KeyFile: key, ClientCAFile: filepath.Join(dir, "none")}); err == nil ||
		!strings.Contains(err.Error(), "tls.clientCAFile") {
		t.Fatalf("missing CA: %v", err)
	}
}

// TestBasicAuth: the challenge and body on refusal; the user in the context on success;
// refusals observed as 401s without the claimed user.
func TestBasicAuth(t *testing.T) {
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	testsupport.WriteFile(t, path, []byte("alice:"+string(h)+"\n"))
	a, err := newBasicAuth(path, 30, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var seen []proxy.AccessRecord
	obs := observerFunc(func(_ context.Context, _ proxy.Route, rec proxy.AccessRecord) { seen = append(seen, rec) })
	var user string
	srv := a.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { user = admission.UserFrom(r.Context()) }), obs)
	for _, c := range []struct {
		name, user, pw string
		ok             bool
	}{{"good", "alice", "pw", true}, {"cached", "alice", "pw", true}, {"wrong", "alice", "px", false},
		{"unknown", "bob", "pw", false}, {"empty", "", "", false}} {
		req := httptest.NewRequest(http.MethodGet, "/v2/", nil)
		if c.user != "" || c.pw != "" {
			req.SetBasicAuth(c.user, c.pw)
		}
		rec := httptest.NewRecorder()
		user = ""
		srv.ServeHTTP(rec, req)
		if c.ok {
			if rec.Code != http.StatusOK || user != "alice" {
				t.Errorf("%s: %d, user %q", c.name, rec.Code, user)
			}
			continue
		}
		if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != `Basic realm="pullgate"` ||
			!strings.Contains(rec.Body.String(), `"code":"UNAUTHORIZED"`) || user != "" {
			t.Errorf("%s: %d %v %s", c.name, rec.Code, rec.Header(), rec.Body)
		}
	}
	if len(seen) != 3 || seen[0].Status != http.StatusUnauthorized || seen[0].User != "" {
		t.Errorf("observed %+v", seen)
	}
}

type observerFunc func(context.Context, proxy.Route, proxy.AccessRecord)

func (f observerFunc) Observe(ctx context.Context, rt proxy.Route, rec proxy.AccessRecord) {
	f(ctx, rt, rec)
}

// TestTimedEvaluatorKeepsListingRefusal: the metrics' timing decorator keeps the
// policy's ID and its RepositoryPolicy upgrade.
func TestTimedEvaluatorKeepsListingRefusal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.json")
	testsupport.WriteFile(t, path, []byte(`{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{"docker.io/library":[{"type":"reject"}]}}}`))
	pol, err := policy.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	e := newTimedEvaluator(pol, NewMetrics().evaluateTime)
	rp, ok := e.(enforce.RepositoryPolicy)
	if !ok {
		t.Fatal("the timed policy lost RejectsRepository")
	}
	named, _ := reference.ParseNormalizedNamed("docker.io/library/alpine")
	if _, rejected := rp.RejectsRepository(named); !rejected {
		t.Error("the timed policy does not reject a reject scope's repository")
	}
	if id, ok := e.(enforce.Identified); !ok || id.ID() != pol.ID() || id.ID() == "" {
		t.Error("the timed policy lost its ID")
	}
}

// TestOpsHandler: /healthz, /readyz (policy loaded, content store reachable) and the
// content store's families through contentStatsHook.
func TestOpsHandler(t *testing.T) {
	s := &Server{ops: &operations{metrics: NewMetrics()}}
	h := s.OpsHandler()
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz %d", code)
	}
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before the policy is loaded: %d", code)
	}
	s.ops.policyLoaded.Store(true)
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz: %d", code)
	}
	reachable := error(nil)
	s.contentStatsHook(func() (int64, int64, int64, int64) { return 7, 3, 1, 4096 },
		func(context.Context) error { return reachable })
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz with a reachable store: %d", code)
	}
	reachable = errors.New("the store does not answer")
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "content store") {
		t.Errorf("/readyz with an unreachable store: %d %q", code, body)
	}
	_, body := get("/metrics")
	for _, want := range []string{"pullgate_content_bytes 4096", "pullgate_content_hits_total 7", "pullgate_content_misses_total 3",
		`pullgate_decisions_total{verdict="accept"} 0`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
