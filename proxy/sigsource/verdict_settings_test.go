package sigsource

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/admission"
)

// brokenLookaside is a lookaside on 127.0.0.1 that answers every request with 500 (as an
// unreachable one fails the lookup), counting them.
func brokenLookaside(t *testing.T) (url string, requests *atomic.Int64) {
	t.Helper()
	requests = new(atomic.Int64)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(s.Close)
	return s.URL, requests
}

// firstReads counts the requests for a signature-1 on s: one per lookup.
func firstReads(s *sigServer) int {
	n := 0
	for _, p := range s.requests() {
		if strings.HasSuffix(p, "/signature-1") {
			n++
		}
	}
	return n
}

// TestSignatureAPIUsesVerdictSettings (issue 14 item 7): pullgate's signature API serves
// the signatures its verdict found. With a registries.d section scoped to the tag (working
// lookaside) and one for the repository (broken lookaside), the verdict on repo:1 reads the
// tag's lookaside; a client then asking the signature API for repo@digest must get those
// signatures, not the repository section's 503.
func TestSignatureAPIUsesVerdictSettings(t *testing.T) {
	key := pgptest.NewKey(t, "k", pgptest.KeyOptions{})
	setup := func(t *testing.T, change func(*FinderOptions)) (f *Finder, reg *testRegistry, good *sigServer, broken *atomic.Int64, d digest.Digest, sig []byte) {
		t.Helper()
		reg = newTestRegistry(t, false)
		d = reg.putImage(t, testRepo, "1").Digest
		sig = pgptest.SimpleSignature(t, key, d.String(), testRegistryName+"/"+testRepo+":1")
		good = newSigServer(t)
		good.put(testRepo, d, 1, sig)
		brokenURL, broken := brokenLookaside(t)
		files := map[string]string{"r.yaml": "docker:\n" +
			"  " + testRegistryName + "/" + testRepo + ":1:\n    lookaside: " + good.URL + "/base\n" +
			"  " + testRegistryName + "/" + testRepo + ":empty:\n    lookaside: " + good.URL + "/empty\n" +
			"  " + testRegistryName + "/" + testRepo + ":\n    lookaside: " + brokenURL + "\n"}
		return newTestFinder(t, reg, files, change), reg, good, broken, d, sig
	}
	target := admission.Target{Registry: testRegistryName, Repository: testRepo}
	verdict := func(t *testing.T, f *Finder, tag string, d digest.Digest) error {
		t.Helper()
		_, err := f.Signatures(context.Background(), testRegistryName, testRepo, mustRef(t, testRegistryName+"/"+testRepo+":"+tag), d)
		return err
	}
	wantServed := func(t *testing.T, f *Finder, d digest.Digest, sig []byte) {
		t.Helper()
		got, err := f.SimpleSignatures(context.Background(), target, d)
		if err != nil {
			t.Fatalf("signature API after the verdict: %v", err)
		}
		if len(got) != 1 || !bytes.Equal(got[0], sig) {
			t.Fatalf("signature API served %d signatures, want the one the verdict found", len(got))
		}
	}
	wantUnavailable := func(t *testing.T, f *Finder, d digest.Digest) {
		t.Helper()
		_, err := f.SimpleSignatures(context.Background(), target, d)
		if err == nil || proxy.SignatureAnswer(err).Code != errcode.ErrorCodeUnavailable {
			t.Fatalf("err = %v, want 503 (the repository section's broken lookaside)", err)
		}
	}

	t.Run("served from the verdict's lookup", func(t *testing.T) {
		f, _, good, broken, d, sig := setup(t, nil)
		if err := verdict(t, f, "1", d); err != nil {
			t.Fatal(err)
		}
		wantServed(t, f, d, sig)
		if n := broken.Load(); n != 0 {
			t.Errorf("the repository section's lookaside got %d requests", n)
		}
		if n := firstReads(good); n != 1 {
			t.Errorf("the tag's lookaside served signature-1 %d times, want 1 (the verdict's; then cached)", n)
		}
	})
	t.Run("settings are reused once the signatures expire", func(t *testing.T) {
		f, _, good, broken, d, sig := setup(t, func(o *FinderOptions) { o.CacheTTL = time.Nanosecond })
		if err := verdict(t, f, "1", d); err != nil {
			t.Fatal(err)
		}
		wantServed(t, f, d, sig)
		if n, nb := firstReads(good), broken.Load(); n != 2 || nb != 0 {
			t.Errorf("tag lookaside served signature-1 %d times (want 2), repository lookaside got %d requests (want 0)", n, nb)
		}
	})
	t.Run("no verdict: the repo@digest lookup", func(t *testing.T) {
		f, _, _, _, d, _ := setup(t, nil)
		wantUnavailable(t, f, d)
	})
	t.Run("a failed verdict lookup is not remembered", func(t *testing.T) {
		f, _, _, _, d, sig := setup(t, nil)
		if err := verdict(t, f, "1", d); err != nil {
			t.Fatal(err)
		}
		// Another tag of the same digest, resolved to the broken section: its verdict
		// is indeterminate and must not replace what served the first.
		if err := verdict(t, f, "2", d); err == nil {
			t.Fatal("the repository section's lookup succeeded")
		}
		wantServed(t, f, d, sig)
	})
	t.Run("every remembered verdict lookup is served", func(t *testing.T) {
		f, _, _, _, d, sig := setup(t, nil)
		if err := verdict(t, f, "1", d); err != nil {
			t.Fatal(err)
		}
		// A later verdict through a section whose lookaside has none for d does not hide
		// the signatures the first found.
		if err := verdict(t, f, "empty", d); err != nil {
			t.Fatal(err)
		}
		wantServed(t, f, d, sig)
	})
	t.Run("a signature two sections find is served once", func(t *testing.T) {
		f, _, good, _, d, sig := setup(t, nil)
		good.answer("/empty/"+testRepo+"@sha256="+d.Encoded()+"/signature-1", func(w http.ResponseWriter, _ *http.Request) { w.Write(sig) })
		for _, tag := range []string{"1", "empty"} {
			if err := verdict(t, f, tag, d); err != nil {
				t.Fatal(err)
			}
		}
		wantServed(t, f, d, sig)
	})
	t.Run("one remembered lookup failing now", func(t *testing.T) {
		// Nothing cached: each signature API request reads again. A section failing now
		// leaves the others' signatures served; all failing is a 503.
		f, _, good, _, d, sig := setup(t, func(o *FinderOptions) { o.CacheTTL = time.Nanosecond })
		for _, tag := range []string{"1", "empty"} {
			if err := verdict(t, f, tag, d); err != nil {
				t.Fatal(err)
			}
		}
		fail := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) }
		good.answer("/empty/"+testRepo+"@sha256="+d.Encoded()+"/signature-1", fail)
		wantServed(t, f, d, sig)
		good.answer(sigPath(testRepo, d, 1), fail)
		_, err := f.SimpleSignatures(context.Background(), target, d)
		if err == nil || proxy.SignatureAnswer(err).Code != errcode.ErrorCodeUnavailable || !errors.Is(err, ErrLookasideFetch) {
			t.Fatalf("err = %v, want 503 from the lookaside errors", err)
		}
	})
	t.Run("only settings used for that digest", func(t *testing.T) {
		// The client chooses the digest it asks for, not the section: a digest no verdict
		// looked up gets the repo@digest lookup even though the tag section served another
		// digest of the repository (and the tag's lookaside holds a signature for it).
		f, reg, good, broken, d, _ := setup(t, nil)
		other := reg.putImage(t, testRepo, "other").Digest
		good.put(testRepo, other, 1, pgptest.SimpleSignature(t, key, other.String(), testRegistryName+"/"+testRepo+":1"))
		if err := verdict(t, f, "1", d); err != nil {
			t.Fatal(err)
		}
		wantUnavailable(t, f, other)
		if broken.Load() == 0 {
			t.Error("the repository section was not consulted for the other digest")
		}
	})
	t.Run("bounded", func(t *testing.T) {
		// The memory holds CacheSize manifests; the oldest is forgotten first.
		f, reg, good, _, d, sig := setup(t, func(o *FinderOptions) { o.CacheSize = 2 })
		if err := verdict(t, f, "1", d); err != nil {
			t.Fatal(err)
		}
		wantServed(t, f, d, sig)
		for _, tag := range []string{"a", "b"} {
			other := reg.putImage(t, testRepo, tag).Digest
			good.put(testRepo, other, 1, pgptest.SimpleSignature(t, key, other.String(), testRegistryName+"/"+testRepo+":1"))
			if err := verdict(t, f, "1", other); err != nil {
				t.Fatal(err)
			}
		}
		if n := f.verdictSettings.len(); n != 2 {
			t.Errorf("%d manifests remembered, want 2", n)
		}
		wantUnavailable(t, f, d)
	})
}

// TestVerdictSettingsPerImage: at most maxVerdictSettingsPerImage distinct settings per
// manifest, most recent first; remembering one again moves it first without a repeat.
func TestVerdictSettingsPerImage(t *testing.T) {
	v, err := newVerdictSettings(8)
	if err != nil {
		t.Fatal(err)
	}
	k := imageKey{registry: testRegistryName, repository: testRepo, digest: digest.FromString("m")}
	settings := func(i int) Settings {
		u, err := url.Parse("http://127.0.0.1/" + strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		return Settings{Lookaside: u}
	}
	names := func() string {
		var out []string
		for _, s := range v.get(k) {
			out = append(out, s.Lookaside.Path)
		}
		return strings.Join(out, " ")
	}
	for i := range maxVerdictSettingsPerImage + 2 {
		v.remember(k, settings(i))
	}
	if got := names(); got != "/5 /4 /3 /2" {
		t.Fatalf("remembered %q, want the %d most recent", got, maxVerdictSettingsPerImage)
	}
	v.remember(k, settings(3))
	v.remember(k, Settings{Lookaside: settings(3).Lookaside, UseSigstoreAttachments: true})
	if got := names(); got != "/3 /3 /5 /4" {
		t.Fatalf("remembered %q after repeats", got)
	}
	if v.get(k)[0].UseSigstoreAttachments != true || v.get(k)[1].UseSigstoreAttachments {
		t.Fatalf("the attachments flag tells settings apart: %+v", v.get(k))
	}
}
