package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"

	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/crypto/bcrypt"
)

// The operations comparison (-ops): plain pullgate against pullgate with metrics on, and
// against pullgate with TLS and basic auth, in the same run, on the same images.

const (
	opsUser     = "bench"
	opsPassword = "bench password"
)

// opsResult is what -ops measured.
type opsResult struct {
	// MetricsManifest compares warm manifest GETs by digest: plain, then with metrics.
	MetricsManifest latencyResult `json:"metricsManifestByDigest"`
	// SecureManifest compares the same GETs: plain, then over TLS with basic auth.
	SecureManifest latencyResult `json:"tlsAuthManifestByDigest"`
	// SecureBigLayer compares the big layer: plain, then over TLS with basic auth. The
	// CPU figures are each pullgate's own.
	SecureBigLayer throughputResult `json:"tlsAuthBigLayer"`
}

// measureOps starts the two variants beside the plain pullgate at plain and measures.
func measureOps(ctx context.Context, o *options, r *report, bin, dir, regAddr string, regPID int, trust *trustFiles,
	plain endpoint, plainPID int, big, multi *pushedImage, logf func(string, ...any)) error {
	opsDir := filepath.Join(dir, "ops")
	if err := os.MkdirAll(opsDir, 0o700); err != nil {
		return err
	}
	caPool, certFile, keyFile, err := writeServingCert(opsDir)
	if err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(opsPassword), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	htpasswd := filepath.Join(opsDir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(opsUser+":"+string(hash)+"\n"), 0o600); err != nil {
		return err
	}

	var secureAddr string
	client := &http.Client{Transport: &basicAuthFor{host: &secureAddr, inner: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
		TLSClientConfig:     &tls.Config{RootCAs: caPool},
	}}}
	defer client.CloseIdleConnections()

	logf("ops: starting pullgate with metrics")
	metrics, metricsAddr, err := startVariant(ctx, client, bin, filepath.Join(opsDir, "metrics"), regAddr, trust, o.ProxyLogLevel,
		"metrics:\n  listen: 127.0.0.1:0\n", "http")
	if err != nil {
		return err
	}
	defer metrics.stop()
	logf("ops: starting pullgate with TLS and basic auth")
	secure, addr, err := startVariantAt(ctx, client, bin, filepath.Join(opsDir, "secure"), regAddr, trust, o.ProxyLogLevel,
		fmt.Sprintf("tls:\n  certFile: %q\n  keyFile: %q\nauth:\n  htpasswd: %q\n", certFile, keyFile, htpasswd), "https", &secureAddr)
	if err != nil {
		return err
	}
	defer secure.stop()

	p := newPuller(client, o.ClientHash)
	metricsEP := endpoint{name: "pullgate+metrics", base: "http://" + metricsAddr + "/v2/" + upstreamName}
	secureEP := endpoint{name: "pullgate+tls+auth", base: "https://" + addr + "/v2/" + upstreamName}
	for _, e := range []endpoint{plain, metricsEP, secureEP} {
		for _, img := range []*pushedImage{big, multi} {
			if _, err := p.manifest(ctx, e.manifestURL(img.repo, img.tag)); err != nil {
				return fmt.Errorf("first pull through %s: %w", e.name, err)
			}
		}
	}
	res := &opsResult{}
	logf("ops: manifest GETs by digest, plain against metrics, %d each", o.N)
	d, x, err := manifestLatency(ctx, p, plain, metricsEP, multi.repo, multi.digest.String(), o.N)
	if err != nil {
		return err
	}
	res.MetricsManifest = newLatency(d, x)
	logf("ops: manifest GETs by digest, plain against TLS and basic auth, %d each", o.N)
	if d, x, err = manifestLatency(ctx, p, plain, secureEP, multi.repo, multi.digest.String(), o.N); err != nil {
		return err
	}
	res.SecureManifest = newLatency(d, x)
	logf("ops: 1 layer × %d MiB, plain against TLS and basic auth, %d runs each", o.BigLayerMiB, o.Runs)
	dt, xt, err := pairedThroughput(ctx, p, cpuMeter{registryPID: regPID, pullgatePID: plainPID},
		cpuMeter{registryPID: regPID, pullgatePID: secure.pid()}, plain, secureEP, big.repo, big.layers, o.Runs)
	if err != nil {
		return err
	}
	res.SecureBigLayer = newThroughput(sumSizes(big), len(big.layers), dt, xt)
	r.Operations = res
	return nil
}

// pairedThroughput pulls layers from each side runs times, interleaved, each side metered
// by its own meter (its own pullgate's CPU).
func pairedThroughput(ctx context.Context, p *puller, dm, xm cpuMeter, direct, proxied endpoint, repo string, layers []v1.Descriptor, runs int) (d, x transferSide, err error) {
	var size int64
	for _, l := range layers {
		size += l.Size
	}
	measure := func(meter cpuMeter, e endpoint, s *transferSide) error {
		before := meter.read()
		v, err := pullBlobs(ctx, p, e, repo, layers)
		if err != nil {
			return err
		}
		s.cpu = s.cpu.add(meter.read().sub(before))
		s.runs = append(s.runs, v)
		s.bytes += size
		return nil
	}
	for i := range runs {
		if err := pair(i, func() error { return measure(dm, direct, &d) }, func() error { return measure(xm, proxied, &x) }); err != nil {
			return d, x, err
		}
	}
	return d, x, nil
}

// basicAuthFor adds the bench user's credentials to requests for *host.
type basicAuthFor struct {
	host  *string
	inner http.RoundTripper
}

func (b *basicAuthFor) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == *b.host {
		r = r.Clone(r.Context())
		r.SetBasicAuth(opsUser, opsPassword)
	}
	return b.inner.RoundTrip(r)
}

func startVariant(ctx context.Context, client *http.Client, bin, dir, regAddr string, trust *trustFiles, logLevel, extra, scheme string) (*process, string, error) {
	var addr string
	return startVariantAt(ctx, client, bin, dir, regAddr, trust, logLevel, extra, scheme, &addr)
}

// startVariantAt starts pullgate with extra configuration and stores its address in
// *addr before waiting for it (the client's credentials follow the address).
func startVariantAt(ctx context.Context, client *http.Client, bin, dir, regAddr string, trust *trustFiles, logLevel, extra, scheme string, addr *string) (*process, string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	a, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	*addr = a
	cfg := fmt.Sprintf(pullgateConfig, a, upstreamName, "http://"+regAddr, trust.policy, trust.registriesD, strings.ToLower(logLevel)) + extra
	cfgPath := filepath.Join(dir, "pullgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, "", err
	}
	p, err := startProcess("pullgate", filepath.Join(dir, "pullgate.log"), bin, "serve", "--config", cfgPath)
	if err != nil {
		return nil, "", err
	}
	if err := p.waitReady(ctx, client, scheme+"://"+a+"/v2/"); err != nil {
		p.stop()
		return nil, "", err
	}
	return p, a, nil
}

// writeServingCert makes a CA and a certificate for 127.0.0.1 signed by it.
func writeServingCert(dir string) (*x509.CertPool, string, string, error) {
	now := time.Now()
	ca, caKey, err := newCert(&x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pullgate-bench CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, nil, nil)
	if err != nil {
		return nil, "", "", err
	}
	cert, key, err := newCert(&x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}, ca, caKey)
	if err != nil {
		return nil, "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, "", "", err
	}
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		return nil, "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, "", "", err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, certFile, keyFile, nil
}

// newCert makes a P-256 key and a certificate of tmpl for it, signed by parentKey as
// parent, or self-signed when parent is nil.
func newCert(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// writeOpsTable prints the -ops section.
func (r *report) writeOpsTable(p func(string, ...any)) {
	res := r.Operations
	if res == nil {
		return
	}
	p("")
	p("OPERATIONS (against plain pullgate, same run)\tplain\tvariant\tratio\tvariant − plain")
	for _, l := range []struct {
		name string
		r    latencyResult
	}{{"metrics on: manifest by digest", res.MetricsManifest}, {"TLS + basic auth: manifest by digest", res.SecureManifest}} {
		d, x := l.r.Direct, l.r.Proxy
		p("  %s p50\t%.3f ms\t%.3f ms\t%.3f×\t%+.3f ms", l.name, d.P50, x.P50, l.r.RatioP50, x.P50-d.P50)
		p("  %s mean\t%.3f ms\t%.3f ms\t%.3f×\t%+.3f ms", l.name, d.Mean, x.Mean, l.r.RatioMean, x.Mean-d.Mean)
	}
	t := res.SecureBigLayer
	p("  TLS + basic auth: 1 layer × %d MiB\t%.0f MiB/s\t%.0f MiB/s\t%.2f×", r.Options.BigLayerMiB, t.DirectMiBps, t.ProxyMiBps, t.Ratio)
	p("    pullgate CPU s per GiB\t%.2f\t%.2f\t\t%+.2f", t.DirectCPU.Pullgate, t.ProxyCPU.Pullgate, t.ProxyCPU.Pullgate-t.DirectCPU.Pullgate)
}
