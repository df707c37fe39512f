package server

import (
	"github.com/pullgate/pullgate/internal/readfile"

	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync/atomic"

	"github.com/pullgate/pullgate/internal/config"
)

// maxTLSFileSize bounds a certificate, key or CA file: real ones are a few KiB; the bound
// stops a mistaken path (a device, a disk image) from being read into memory.
const maxTLSFileSize = 1 << 20

// TLSFiles holds the serving certificate and the client CAs read from tls.certFile,
// tls.keyFile and tls.clientCAFile. Handshakes read the current ones (GetCertificate,
// GetConfigForClient), so Reload rotates them without a restart; a Reload that fails
// keeps the running ones.
type TLSFiles struct {
	files config.TLS
	cert  atomic.Pointer[tls.Certificate]
	cas   atomic.Pointer[x509.CertPool]
}

// NewTLSFiles reads the files of c, or fails naming the key whose file is wrong.
func NewTLSFiles(c config.TLS) (*TLSFiles, error) {
	t := &TLSFiles{files: c}
	if err := t.Reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// Reload reads the files again and puts them in force if all of them load.
func (t *TLSFiles) Reload() error {
	certPEM, err := readBounded(t.files.CertFile)
	if err != nil {
		return fmt.Errorf("tls.certFile: %w", err)
	}
	keyPEM, err := readBounded(t.files.KeyFile)
	if err != nil {
		return fmt.Errorf("tls.keyFile: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// The message of X509KeyPair never contains key material.
		return fmt.Errorf("tls.certFile and tls.keyFile (%s, %s): %w", t.files.CertFile, t.files.KeyFile, err)
	}
	var pool *x509.CertPool
	if t.files.ClientCAFile != "" {
		caPEM, err := readBounded(t.files.ClientCAFile)
		if err != nil {
			return fmt.Errorf("tls.clientCAFile: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return fmt.Errorf("tls.clientCAFile: %s holds no PEM certificate", t.files.ClientCAFile)
		}
	}
	t.cert.Store(&cert)
	if pool != nil {
		t.cas.Store(pool)
	}
	return nil
}

// Files are the files Reload reads, for the watcher.
func (t *TLSFiles) Files() []string {
	out := []string{t.files.CertFile, t.files.KeyFile}
	if t.files.ClientCAFile != "" {
		out = append(out, t.files.ClientCAFile)
	}
	return out
}

// Config is the server's TLS configuration: TLS 1.2 or later, the current certificate,
// and with client CAs, a client certificate signed by one of them required in the
// handshake.
func (t *TLSFiles) Config() *tls.Config {
	base := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return t.cert.Load(), nil
		},
	}
	if t.files.ClientCAFile == "" {
		return base
	}
	base.ClientAuth = tls.RequireAndVerifyClientCert
	base.ClientCAs = t.cas.Load()
	// Each handshake verifies against the CAs in force now.
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.GetConfigForClient = nil
		c.ClientCAs = t.cas.Load()
		return c, nil
	}
	return base
}

// readBounded reads a regular file of at most maxTLSFileSize bytes.
func readBounded(path string) ([]byte, error) { return readfile.Bounded(path, maxTLSFileSize) }
