package harness

import (
	"crypto/ecdsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pullgate/pullgate/internal/testsupport"
)

// ServingCA is a CA made in the test that issues TLS server and client certificates.
type ServingCA struct {
	Cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	serial atomic.Int64
}

// NewServingCA makes a CA named cn.
func NewServingCA(t testing.TB, cn string) *ServingCA {
	t.Helper()
	ca := &ServingCA{key: NewECDSAKey(t)}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial.Add(1)), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	ca.Cert = testsupport.CreateCert(t, tmpl, tmpl, &ca.key.PublicKey, ca.key)
	return ca
}

// PEM is the CA certificate in PEM.
func (ca *ServingCA) PEM() []byte { return CertsPEM(ca.Cert) }

// Issued is a certificate and its key in PEM.
type Issued struct {
	Cert     *x509.Certificate
	CertPEM  []byte
	KeyPEM   []byte
	CertFile string
	KeyFile  string
}

// Issue issues a leaf for 127.0.0.1 named cn: a server certificate, or a client one
// when client is true. The PEM files are written to dir as <cn>.pem and <cn>.key.
func (ca *ServingCA) Issue(t testing.TB, dir, cn string, client bool) Issued {
	t.Helper()
	key := NewECDSAKey(t)
	now := time.Now()
	usage := x509.ExtKeyUsageServerAuth
	if client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial.Add(1) + time.Now().UnixNano()%1000000*1000),
		Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
	cert := testsupport.CreateCert(t, tmpl, ca.Cert, &key.PublicKey, ca.key)
	out := Issued{Cert: cert, CertPEM: CertsPEM(cert), KeyPEM: PrivateKeyPEM(t, key),
		CertFile: filepath.Join(dir, cn+".pem"), KeyFile: filepath.Join(dir, cn+".key")}
	for path, data := range map[string][]byte{out.CertFile: out.CertPEM, out.KeyFile: out.KeyPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
