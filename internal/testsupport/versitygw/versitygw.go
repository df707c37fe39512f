// Package versitygw starts a real S3 server for tests: versitygw (installed, pinned, by
// hack/install-test-tools.sh) with its posix backend in a temporary folder, bound to
// 127.0.0.1, stopped when the test ends. The posix backend runs with its metadata (no
// --nometa: without it multipart uploads cannot be completed, and distribution's s3 driver
// uses them). Test code only; beyond the standard library it uses internal/testsupport.
package versitygw

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pullgate/pullgate/internal/testsupport"
)

// Server is a running versitygw.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Region    string
}

// startTimeout bounds the wait for the server to answer; it starts in well under a second.
const startTimeout = 30 * time.Second

// Start runs versitygw until the test ends. A missing binary fails the test.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := testsupport.Tool(t, "versitygw")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	addr := testsupport.ClosedAddr(t)
	s := &Server{Endpoint: "http://" + addr, AccessKey: "pullgatetest", SecretKey: "pullgatetestsecret", Region: "us-east-1"}
	logf, err := os.Create(filepath.Join(dir, "versitygw.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--port", addr, "--access", s.AccessKey, "--secret", s.SecretKey,
		"--region", s.Region, "--quiet", "posix", data)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting versitygw: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		logf.Close()
	})
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case err := <-exited:
			exited <- err
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("versitygw exited: %v\n%s", err, b)
		default:
		}
		resp, err := http.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not answer on %s within %s: %v", addr, startTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// CreateBucket makes a bucket (a signed PUT, as versitygw wants x-amz-content-sha256).
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, s.Endpoint+"/"+name, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Sign(req, time.Now().UTC())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("creating bucket %s: %v", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		t.Fatalf("creating bucket %s: %s\n%s", name, resp.Status, b)
	}
}

// DriverParams are the parameters of distribution's s3 driver for bucket, under the key
// prefix rootdirectory.
func (s *Server) DriverParams(bucket, rootdirectory string) map[string]any {
	return map[string]any{
		"accesskey":      s.AccessKey,
		"secretkey":      s.SecretKey,
		"region":         s.Region,
		"regionendpoint": s.Endpoint,
		"forcepathstyle": true,
		"bucket":         bucket,
		"secure":         false,
		"v4auth":         true,
		"rootdirectory":  rootdirectory,
	}
}

// Sign adds AWS Signature Version 4 headers, with s's credentials and region, to a
// request with an empty body (the benchmark makes its bucket with it too).
func (s *Server) Sign(req *http.Request, now time.Time) {
	const emptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	amzDate := now.Format("20060102T150405Z")
	day := now.Format("20060102")
	req.Header.Set("x-amz-content-sha256", emptyHash)
	req.Header.Set("x-amz-date", amzDate)
	signed := "host;x-amz-content-sha256;x-amz-date"
	canonical := strings.Join([]string{
		req.Method, req.URL.EscapedPath(), req.URL.RawQuery,
		"host:" + req.URL.Host + "\nx-amz-content-sha256:" + emptyHash + "\nx-amz-date:" + amzDate + "\n",
		signed, emptyHash,
	}, "\n")
	scope := day + "/" + s.Region + "/s3/aws4_request"
	sum := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	key := []byte("AWS4" + s.SecretKey)
	for _, part := range []string{day, s.Region, "s3", "aws4_request"} {
		key = hmacSHA256(key, part)
	}
	req.Header.Set("Authorization", fmt.Sprintf("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
		s.AccessKey, scope, signed, hex.EncodeToString(hmacSHA256(key, toSign))))
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
