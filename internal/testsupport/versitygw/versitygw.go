// Package versitygw starts a real S3 server for tests: internal/versitygw (versitygw with
// its posix backend) in a temporary folder, bound to 127.0.0.1, stopped when the test
// ends, with failures failing the test. Test code only.
package versitygw

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/pullgate/pullgate/internal/versitygw"
)

// Server is a running versitygw: its fields (Endpoint, AccessKey, SecretKey, Region),
// DriverParams and Sign are internal/versitygw's.
type Server struct {
	*versitygw.Server
}

// Start runs versitygw until the test ends. A missing binary fails the test.
func Start(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	s, err := versitygw.Start(context.Background(), versitygw.Options{
		DataDir:   filepath.Join(dir, "data"),
		LogPath:   filepath.Join(dir, "versitygw.log"),
		AccessKey: "pullgatetest", SecretKey: "pullgatetestsecret", Region: "us-east-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return &Server{s}
}

// CreateBucket makes a bucket; a failure fails the test.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	if err := s.Server.CreateBucket(context.Background(), name); err != nil {
		t.Fatal(err)
	}
}
