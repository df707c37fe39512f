package sigsource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
	"github.com/pullgate/pullgate/proxy/admission"
)

// Attacks on signature discovery by whoever controls an upstream or a lookaside (issues 8.3,
// 15.2, 15.3, 15.4).

// bigBundleLayer is a bundle-typed layer of size bytes, distinct per n.
func bigBundleLayer(n, size int) sigLayer {
	head := fmt.Sprintf(`{"n":%d,"pad":"`, n)
	return sigLayer{mediaType: mediaTypeBundle, data: []byte(head + strings.Repeat("A", size-len(head)-2) + `"}`)}
}

// TestAttackSignatureBudgetBytes: an upstream that attaches many big bundle referrers
// gets at most the per-image byte budget read, and the lookup fails (never a partial
// answer).
func TestAttackSignatureBudgetBytes(t *testing.T) {
	reg := newTestRegistry(t, true)
	img := reg.putImage(t, testRepo, "1")
	const each = 3 << 20 // under the 4 MiB bound of one signature
	for i := range 8 {
		reg.putReferrer(t, testRepo, img, mediaTypeBundle, ocispec.MediaTypeEmptyJSON, bigBundleLayer(i, each))
	}
	f := newTestFinder(t, reg, attachmentsOn, nil)
	reg.blobBytes.Store(0)
	sigs, err := signaturesOf(t, f, testRepo, img.Digest)
	if err == nil {
		t.Errorf("8 bundles of 3 MiB: %d signatures and no error, want the lookup to fail", len(sigs))
	} else if !errors.Is(err, ErrSignatureBudget) {
		t.Errorf("err = %v, want ErrSignatureBudget", err)
	}
	if served := reg.blobBytes.Load(); served > maxSignatureBytesPerImage {
		t.Errorf("the upstream served %d blob bytes for one lookup, more than the %d budget", served, maxSignatureBytesPerImage)
	}
	if used := inFlight.inUse(); used != 0 {
		t.Errorf("%d bytes still counted in flight after the lookup", used)
	}
}

// TestAttackSignatureBudgetCount: signatures spread over sources count together.
func TestAttackSignatureBudgetCount(t *testing.T) {
	reg := newTestRegistry(t, true)
	img := reg.putImage(t, testRepo, "1")
	var layers []sigLayer
	for i := range 100 {
		layers = append(layers, cosignLayer(img.Digest, i))
	}
	reg.putSigManifest(t, testRepo, img.Digest, layers...)
	for i := range 40 {
		reg.putReferrer(t, testRepo, img, mediaTypeBundle, ocispec.MediaTypeEmptyJSON, bundleLayer(fmt.Sprint(i)))
	}
	f := newTestFinder(t, reg, attachmentsOn, nil)
	sigs, err := signaturesOf(t, f, testRepo, img.Digest)
	if err == nil {
		t.Fatalf("140 signatures: %d found and no error, want the lookup to fail", len(sigs))
	}
	if !errors.Is(err, ErrSignatureBudget) {
		t.Errorf("err = %v, want ErrSignatureBudget", err)
	}
	// Bundles are not fetched once the count is spent: 100 .sig layers leave 28.
	if n := reg.count(http.MethodGet, "/blobs/"); n > maxSignaturesPerImage {
		t.Errorf("%d blobs fetched, want at most %d", n, maxSignaturesPerImage)
	}
}

// TestAttackSignatureBudgetLookaside: lookaside files count against the same budget
// (three files of 3 MiB exceed 8 MiB), and the read stops at the budget.
func TestAttackSignatureBudgetLookaside(t *testing.T) {
	reg := newTestRegistry(t, false)
	lookaside := newSigServer(t)
	d := digest.FromString("m")
	var served atomic.Int64
	for n := 1; n <= 5; n++ {
		body := append([]byte{0x88}, bytes.Repeat([]byte{'x'}, 3<<20)...)
		lookaside.answer(sigPath(testRepo, d, n), func(w http.ResponseWriter, _ *http.Request) {
			k, _ := w.Write(body)
			served.Add(int64(k))
		})
	}
	f := newTestFinder(t, reg, lookaside.registriesD(""), nil)
	_, err := signaturesOf(t, f, testRepo, d)
	if err == nil {
		t.Fatal("15 MiB of lookaside signatures: no error")
	}
	if !errors.Is(err, ErrSignatureBudget) {
		t.Errorf("err = %v, want ErrSignatureBudget", err)
	}
	// The server may write a little more than was read before it sees the connection go.
	if n := len(lookaside.requests()); n > 3 {
		t.Errorf("%d lookaside files requested, want at most 3", n)
	}
}

// TestAttackLookasideRedirect: a lookaside that redirects to another host (an internal
// server on another loopback port) is not followed; a redirect on the same host is.
func TestAttackLookasideRedirect(t *testing.T) {
	var internalHits atomic.Int64
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		internalHits.Add(1)
		w.Write([]byte{0x88, 's', 'e', 'c', 'r', 'e', 't'})
	}))
	t.Cleanup(internal.Close)
	reg := newTestRegistry(t, false)
	lookaside := newSigServer(t)
	d := digest.FromString("m")
	lookaside.answer(sigPath(testRepo, d, 1), func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, internal.URL+"/latest/meta-data", http.StatusFound)
	})
	f := newTestFinder(t, reg, lookaside.registriesD(""), nil)
	sigs, err := signaturesOf(t, f, testRepo, d)
	if err == nil {
		t.Errorf("a cross-host redirect gave %d signatures and no error", len(sigs))
	}
	if n := internalHits.Load(); n != 0 {
		t.Errorf("the redirect target was asked %d times", n)
	}

	// Same host: followed.
	key := pgptest.NewKey(t, "k", pgptest.KeyOptions{})
	d2 := digest.FromString("m2")
	good2 := pgptest.SimpleSignature(t, key, d2.String(), testRegistryName+"/"+testRepo+":1")
	lookaside.answer(sigPath(testRepo, d2, 1), func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/moved/1", http.StatusFound)
	})
	lookaside.answer("/moved/1", func(w http.ResponseWriter, _ *http.Request) { w.Write(good2) })
	sigs, err = signaturesOf(t, f, testRepo, d2)
	if err != nil || len(sigs) != 1 || !bytes.Equal(sigs[0].Data, good2) {
		t.Errorf("same-host redirect: %d signatures, %v", len(sigs), err)
	}
}

// TestAttackSimpleSignaturesServeOnlySignatures: pullgate's signature API serves only
// OpenPGP signed messages whose payload names the digest asked for, whether they came
// from a lookaside or the upstream's own signature API; the rest is dropped, never relayed.
func TestAttackSimpleSignaturesServeOnlySignatures(t *testing.T) {
	key := pgptest.NewKey(t, "k", pgptest.KeyOptions{})
	d := digest.FromString("an image manifest")
	ident := testRegistryName + "/" + testRepo + ":1"
	good := pgptest.SimpleSignature(t, key, d.String(), ident)
	otherDigest := pgptest.SimpleSignature(t, key, digest.FromString("another").String(), ident)
	notPayload := pgptest.Sign(t, []byte(`{"aws_secret":"x"}`), pgptest.SignOptions{Signers: []*packet.PrivateKey{key.Primary()}})
	junk := []byte{0x88, '{', '"', 'k', '"', ':', '1', '}'} // passes the first-byte test only
	wantOnly := func(t *testing.T, got [][]byte) {
		t.Helper()
		if len(got) != 1 || !bytes.Equal(got[0], good) {
			t.Errorf("served %d signatures, want only the signature of %s", len(got), d)
			for _, g := range got {
				t.Logf("  served %q", g[:min(len(g), 40)])
			}
		}
	}
	target := admission.Target{Registry: testRegistryName, Repository: testRepo}

	t.Run("lookaside", func(t *testing.T) {
		reg := newTestRegistry(t, false)
		lookaside := newSigServer(t)
		for i, s := range [][]byte{junk, otherDigest, good, notPayload} {
			lookaside.put(testRepo, d, i+1, s)
		}
		f := newTestFinder(t, reg, lookaside.registriesD(""), nil)
		got, err := f.SimpleSignatures(context.Background(), target, d)
		if err != nil {
			t.Fatal(err)
		}
		wantOnly(t, got)
	})
	t.Run("upstream signature API", func(t *testing.T) {
		reg := newTestRegistry(t, false)
		var entries []string
		for _, s := range [][]byte{junk, []byte(`{"internal":"json"}`), otherDigest, good, notPayload} {
			entries = append(entries, signatureListEntry(2, "atomic", s))
		}
		reg.enableSignatureAPI(map[string]string{testRepo + "@" + d.String(): `{"signatures":[` + strings.Join(entries, ",") + `]}`})
		f := newTestFinder(t, reg, nil, nil)
		got, err := f.SimpleSignatures(context.Background(), target, d)
		if err != nil {
			t.Fatal(err)
		}
		wantOnly(t, got)
		// The policy still sees every entry: an invalid signature rejects only itself.
		all, err := signaturesOf(t, f, testRepo, d)
		if err != nil || len(all) != 5 {
			t.Errorf("Signatures: %d, %v; want all 5 entries for the policy", len(all), err)
		}
	})
}

// TestAttackLookasideCredentialsInMessages: the lookaside URL's user, password and query
// never reach a verdict reason (sent to any client in a 403) nor an error.
func TestAttackLookasideCredentialsInMessages(t *testing.T) {
	trusted := pgptest.NewKey(t, "trusted", pgptest.KeyOptions{})
	other := pgptest.NewKey(t, "other", pgptest.KeyOptions{})
	reg := newTestRegistry(t, false)
	lookaside := newSigServer(t)
	img := reg.putImage(t, testRepo, "1")
	lookaside.put(testRepo, img.Digest, 1, pgptest.SimpleSignature(t, other, img.Digest.String(), testRegistryName+"/"+testRepo+":1"))
	broken := digest.FromString("broken")
	lookaside.answer(sigPath(testRepo, broken, 1), func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	base := strings.Replace(lookaside.URL, "http://", "http://alice:hunter2@", 1) + "/base?token=secret"
	f := newTestFinder(t, reg, map[string]string{"l.yaml": "default-docker:\n  lookaside: " + base + "\n"}, nil)
	leaks := func(t *testing.T, what, s string) {
		t.Helper()
		for _, secret := range []string{"alice", "hunter2", "token", "secret", "xxxxx"} {
			if strings.Contains(s, secret) {
				t.Errorf("%s contains %q: %s", what, secret, s)
			}
		}
	}

	v, err := evaluate(t, signedByPolicy(t, trusted), f, "1", img.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if v.Accepted || !strings.Contains(v.Reason, "lookaside http://127.0.0.1:") {
		t.Errorf("verdict %+v, want a denial naming the lookaside", v)
	}
	leaks(t, "the verdict reason", v.Reason)

	_, err = signaturesOf(t, f, testRepo, broken)
	if err == nil {
		t.Fatal("a 418 from the lookaside is not an error")
	}
	leaks(t, "the lookup error", err.Error())

	// Redirects: the refused target's query is not shown either.
	lookaside.answer(sigPath(testRepo, img.Digest, 1), func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://bob:pw@192.0.2.1/x?token=secret", http.StatusFound)
	})
	f = newTestFinder(t, reg, map[string]string{"l.yaml": "default-docker:\n  lookaside: " + base + "\n"}, nil)
	_, err = signaturesOf(t, f, testRepo, img.Digest)
	if err == nil {
		t.Fatal("a cross-host redirect is not an error")
	}
	leaks(t, "the redirect error", err.Error())
	if strings.Contains(err.Error(), "bob") {
		t.Errorf("the redirect error names the target's user: %v", err)
	}
}

func TestRedactedSource(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"https://sigs.example/base/org/app@sha256=ab/signature-1", "https://sigs.example/base/org/app@sha256=ab/signature-1"},
		{"https://alice:pw@sigs.example/base?token=secret#frag", "https://sigs.example/base"},
		{"http://alice@sigs.example:8080/base?x=1", "http://sigs.example:8080/base"},
		{"http://[::1]:5000/a%20b?t=1", "http://[::1]:5000/a%20b"},
		{"file:///var/lib/sigs/org/app@sha256=ab/signature-1", "file:///var/lib/sigs/org/app@sha256=ab/signature-1"},
		{"file:///var/lib/sigs?q=1", "file:///var/lib/sigs"},
	} {
		u, err := url.Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := redactedSource(u); got != tt.want {
			t.Errorf("redactedSource(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCheckLookasideRedirect(t *testing.T) {
	for _, tt := range []struct {
		from, to string
		ok       bool
	}{
		{"http://sigs.example/a", "http://sigs.example/b", true},
		{"http://sigs.example:8080/a", "http://SIGS.example:8080/b", true},
		{"https://sigs.example/a", "https://sigs.example:443/b", true},
		{"http://sigs.example/a", "https://sigs.example/b", true}, // upgrade on the default ports
		{"https://sigs.example/a", "http://sigs.example/b", false},
		{"https://sigs.example:8443/a", "http://sigs.example:8443/b", false},
		{"http://sigs.example:8080/a", "https://sigs.example:8080/b", false},
		{"http://sigs.example/a", "http://other.example/b", false},
		{"http://127.0.0.1:5000/a", "http://127.0.0.1:5001/b", false},
		{"http://127.0.0.1/a", "http://localhost/b", false},
		{"http://sigs.example/a", "http://169.254.169.254/latest/meta-data", false},
		{"http://sigs.example/a", "file:///etc/passwd", false},
	} {
		from, _ := http.NewRequest(http.MethodGet, tt.from, nil)
		to, _ := http.NewRequest(http.MethodGet, tt.to, nil)
		err := checkLookasideRedirect(to, []*http.Request{from})
		if (err == nil) != tt.ok {
			t.Errorf("%s -> %s: err = %v, want allowed %v", tt.from, tt.to, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrLookasideRedirect) {
			t.Errorf("%s -> %s: err = %v, want ErrLookasideRedirect", tt.from, tt.to, err)
		}
	}
	// A chain is judged against its first request, and bounded.
	first, _ := http.NewRequest(http.MethodGet, "http://sigs.example/a", nil)
	via := []*http.Request{first}
	for range maxLookasideRedirects - 1 {
		via = append(via, first)
	}
	next, _ := http.NewRequest(http.MethodGet, "http://sigs.example/b", nil)
	if err := checkLookasideRedirect(next, via); !errors.Is(err, ErrLookasideRedirect) {
		t.Errorf("redirect %d: err = %v", len(via)+1, err)
	}
}

// TestAttackLookasideDowngrade: an https lookaside that redirects to http (same host
// name, the port of an http server) is refused before anything is sent in clear; the
// same-port downgrade is in TestCheckLookasideRedirect.
func TestAttackLookasideDowngrade(t *testing.T) {
	var plainHits atomic.Int64
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		plainHits.Add(1)
		w.Write([]byte{0x88, 'x'})
	}))
	t.Cleanup(plain.Close)
	tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+r.URL.Path, http.StatusFound)
	}))
	t.Cleanup(tls.Close)
	client := NewLookasideClient(LookasideClientOptions{})
	client.Transport = tls.Client().Transport // trusts the test server; the redirect policy stays
	l := &Lookaside{Client: client}
	base, _ := url.Parse(tls.URL + "/base/org/app")
	_, err := readAll(l, base)
	if !errors.Is(err, ErrLookasideRedirect) {
		t.Errorf("https -> http: err = %v, want ErrLookasideRedirect", err)
	}
	if n := plainHits.Load(); n != 0 {
		t.Errorf("the http target was asked %d times", n)
	}
}

// TestSignatureBudgetInFlight: a lookup fails at once, rather than wait, when the
// process already holds maxInFlightSignatureBytes for other lookups, and gives back what
// it held when it ends.
func TestSignatureBudgetInFlight(t *testing.T) {
	pool := &bytePool{limit: 100}
	a := &budget{count: 10, bytes: 80, pool: pool}
	b := &budget{count: 10, bytes: 80, pool: pool}
	if err := a.charge(70); err != nil {
		t.Fatal(err)
	}
	if err := b.charge(40); !errors.Is(err, ErrSignatureBudget) {
		t.Fatalf("charge past the pool: %v", err)
	}
	if err := a.charge(11); !errors.Is(err, ErrSignatureBudget) {
		t.Fatalf("charge past the lookup's budget: %v", err)
	}
	a.release()
	if err := b.charge(40); err != nil {
		t.Fatalf("after release: %v", err)
	}
	b.release()
	if pool.inUse() != 0 {
		t.Fatalf("pool holds %d after both released", pool.inUse())
	}
	// Reads are cut at the budget: the reader fails on the byte that passes it.
	c := &budget{count: 1, bytes: 5, pool: pool}
	if _, err := readSignature(strings.NewReader("0123456789"), c); !errors.Is(err, ErrSignatureBudget) {
		t.Fatalf("readSignature past the budget: %v", err)
	}
	c.release()
}
