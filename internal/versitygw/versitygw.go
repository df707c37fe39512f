// Package versitygw runs a real S3 server: versitygw (installed, pinned, by
// hack/install-test-tools.sh) with its posix backend in a folder, bound to 127.0.0.1. It
// finds the binary, starts it, waits until it answers, makes buckets, gives the parameters
// of distribution's s3 driver and signs the empty-body requests it takes. The posix backend
// runs with its metadata (no --nometa: without it multipart uploads cannot be completed,
// and distribution's s3 driver uses them). The tests use it through
// internal/testsupport/versitygw, pullgate-bench directly; it does not link the testing
// package.
package versitygw

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/pullgate/pullgate/internal/toolpath"
)

// StartTimeout bounds the wait for the server to answer, and for a bucket to be made; it
// starts in well under a second.
const StartTimeout = 30 * time.Second

// Options say how to run versitygw.
type Options struct {
	DataDir string // the posix backend's folder; made if missing
	LogPath string // versitygw's stdout and stderr are appended here
	// AccessKey, SecretKey and Region are the server's credentials and region.
	AccessKey, SecretKey, Region string
	// Client makes the requests to the server; nil means http.DefaultClient.
	Client *http.Client
	// SysProcAttr, if set, is the child's exec.Cmd.SysProcAttr.
	SysProcAttr *syscall.SysProcAttr
}

// Server is a running versitygw.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Region    string

	client  *http.Client
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	waitErr error         // set before done is closed
}

// Start runs versitygw on a free 127.0.0.1 port and waits until it answers. A missing
// binary, a server that exits or one that does not answer within StartTimeout is an
// error (the server is stopped then).
func Start(ctx context.Context, o Options) (*Server, error) {
	bin, err := toolpath.Find("versitygw")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.OpenFile(o.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("versitygw: log file: %w", err)
	}
	s := &Server{Endpoint: "http://" + addr, AccessKey: o.AccessKey, SecretKey: o.SecretKey, Region: o.Region,
		client: o.Client, logPath: o.LogPath, done: make(chan struct{})}
	if s.client == nil {
		s.client = http.DefaultClient
	}
	s.cmd = exec.Command(bin, "--port", addr, "--access", s.AccessKey, "--secret", s.SecretKey,
		"--region", s.Region, "--quiet", "posix", o.DataDir)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = o.SysProcAttr
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting versitygw: %w", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		logf.Close()
		close(s.done)
	}()
	if err := s.waitAnswer(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// waitAnswer polls GET / until the server answers at all, it exits, or StartTimeout passes.
func (s *Server) waitAnswer(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+"/", nil)
		if err != nil {
			return err
		}
		resp, err := s.client.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-s.done:
			b, _ := os.ReadFile(s.logPath)
			return fmt.Errorf("versitygw exited: %v\n%s", s.waitErr, b)
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("versitygw did not answer on %s within %s: %v", s.Endpoint, StartTimeout, err)
			}
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop kills the server and waits for it to exit (its data is scratch). Safe to call
// twice.
func (s *Server) Stop() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// CreateBucket makes a bucket (a signed PUT, as versitygw wants x-amz-content-sha256).
func (s *Server) CreateBucket(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, s.Endpoint+"/"+name, nil)
	if err != nil {
		return err
	}
	s.Sign(req, time.Now().UTC())
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("creating bucket %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("creating bucket %s: %s\n%s", name, resp.Status, b)
	}
	return nil
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
// request with an empty body.
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
