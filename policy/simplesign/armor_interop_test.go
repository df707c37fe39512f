package simplesign

import (
	"bytes"
	"encoding/base64"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
)

// TestInteropArmoredSignatures signs one payload with real gpg as a binary message
// (`gpg --sign`), an ASCII-armored one (`gpg --armor --sign`) and a clearsigned one, makes
// the variants a signature API entry can hold from them, and requires pullgate's Verify to
// reach the verdict `skopeo standalone-verify` (containers/image with gpgme, which passes
// signature API entries to gpg as they are) reaches on each. UntrustedPayload, which
// decides what pullgate's own signature API passes on, must accept the shape of every
// signature Verify accepts. Rows with a differs reason are deliberate differences.
func TestInteropArmoredSignatures(t *testing.T) {
	g, fprs := pgptest.NewSkopeoGnuPG(t, "trusted", "other")
	trusted, other := fprs[0], fprs[1]
	ring, err := ParseKeyring(g.Export(t, trusted, false))
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	const identity = "quay.io/example/app:1"
	manifestPath, payload := writeInteropManifest(t, dir, identity)

	binary := g.Sign(t, trusted, payload, "--sign")
	armored := g.Sign(t, trusted, payload, "--armor", "--sign")
	clear := g.Sign(t, trusted, payload, "--clearsign")
	otherArmored := g.Sign(t, other, payload, "--armor", "--sign")
	otherClear := g.Sign(t, other, payload, "--clearsign")
	detached := g.Sign(t, trusted, payload, "--armor", "--detach-sign")
	if !bytes.HasPrefix(armored, []byte("-----BEGIN PGP MESSAGE-----\n")) {
		t.Fatalf("gpg --armor --sign wrote %q", armored[:min(len(armored), 40)])
	}

	checksum := regexp.MustCompile(`(?m)^=[A-Za-z0-9+/]{4}\n`)
	// rearmor armors data as one base64 line with its checksum: without the checksum line,
	// gpg (through gpgme) finds no data unless the base64 ends in padding (see the rows
	// "no checksum").
	rearmor := func(label, headers string, data []byte) []byte {
		c := crc24(data)
		sum := base64.StdEncoding.EncodeToString([]byte{byte(c >> 16), byte(c >> 8), byte(c)})
		return []byte("-----BEGIN " + label + "-----\n" + headers + base64.StdEncoding.EncodeToString(data) + "\n=" + sum + "\n-----END " + label + "-----\n")
	}
	// Armored signatures without the checksum line, one whose base64 ends in padding and
	// one whose does not: sign payloads of growing length until both turn up.
	var noChecksumPadded, noChecksumUnpadded []byte
	for n := 0; noChecksumPadded == nil || noChecksumUnpadded == nil; n++ {
		if n == 12 {
			t.Fatal("no armored signature of each padding after 12 payload lengths")
		}
		p := bytes.Replace(payload, []byte(`"optional":{`), []byte(`"optional":{"padding":"`+strings.Repeat("x", n)+`",`), 1)
		sig := checksum.ReplaceAll(g.Sign(t, trusted, p, "--armor", "--sign"), nil)
		if bytes.Contains(sig, []byte("=\n-----END")) {
			noChecksumPadded = sig
		} else {
			noChecksumUnpadded = sig
		}
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name       string
		sig        []byte
		skopeo     bool   // containers/image with gpgme accepts it (checked)
		pullgate   bool   // pullgate's Verify accepts it
		untrusted  bool   // UntrustedPayload accepts its shape
		wantReason string // part of pullgate's reason when it refuses
		differs    string // why pullgate's verdict differs from skopeo's
	}{
		{name: "binary, gpg --sign", sig: binary, skopeo: true, pullgate: true, untrusted: true},
		{name: "armored, gpg --armor --sign", sig: armored, skopeo: true, pullgate: true, untrusted: true},
		{name: "clearsigned, gpg --clearsign", sig: clear, skopeo: true, pullgate: true, untrusted: true},
		{name: "armored, CRLF line ends", sig: bytes.ReplaceAll(armored, []byte("\n"), []byte("\r\n")), skopeo: true, pullgate: true, untrusted: true},
		{name: "armored, text before it", sig: cat([]byte("signature of quay.io/example/app:1\n\n"), armored), skopeo: true, pullgate: true, untrusted: true},
		{name: "armored, text after it", sig: cat(armored, []byte("trailing text\n")), skopeo: true, pullgate: true, untrusted: true},
		{name: "armored, blank lines before it", sig: cat([]byte("\n\n"), armored), skopeo: true, pullgate: true, untrusted: true},
		{name: "armored, no checksum, base64 padded", sig: noChecksumPadded, skopeo: true, pullgate: true, untrusted: true},
		{name: "armored, no checksum, base64 not padded", sig: noChecksumUnpadded, pullgate: true, untrusted: true,
			differs: "the checksum is optional (RFC 4880 6.2, RFC 9580 6.1); gpg fed through a pipe, as gpgme feeds it, then finds no data"},
		{name: "armored, wrong checksum", sig: checksum.ReplaceAll(armored, []byte("=AAAA\n")), wantReason: "checksum"},
		{name: "armored, Comment header", sig: bytes.Replace(armored, []byte("-----\n"), []byte("-----\nComment: signed for pullgate\n"), 1), skopeo: true, pullgate: true, untrusted: true},
		{name: "armored, headers and no blank line", sig: rearmor("PGP MESSAGE", "Version: 1\n", binary), skopeo: true, pullgate: true, untrusted: true},
		{name: "armored, one long line", sig: rearmor("PGP MESSAGE", "\n", binary), skopeo: true, pullgate: true, untrusted: true},
		{name: "armored, header line without a colon", sig: rearmor("PGP MESSAGE", "Bogus header\n\n", binary), wantReason: "armor"},
		{name: "armored, PGP SIGNATURE label", sig: rearmor("PGP SIGNATURE", "\n", binary), skopeo: true, pullgate: true, untrusted: true},
		{name: "armored, PGP ARMORED FILE label", sig: rearmor("PGP ARMORED FILE", "\n", binary), skopeo: true, pullgate: true, untrusted: true},
		{name: "armored, unknown label", sig: rearmor("PGP FOO", "\n", binary), wantReason: "PGP FOO"},
		{name: "armored, END label differs", sig: bytes.Replace(armored, []byte("-----END PGP MESSAGE-----"), []byte("-----END PGP SIGNATURE-----"), 1), skopeo: true, pullgate: true, untrusted: true},
		{name: "armored, no END line", sig: bytes.Replace(armored, []byte("-----END PGP MESSAGE-----\n"), nil, 1), skopeo: true, pullgate: true, untrusted: true},
		{name: "armored, indented", sig: regexp.MustCompile(`(?m)^`).ReplaceAll(armored, []byte("  ")), wantReason: "valid OpenPGP"},
		{name: "armored clearsigned message", sig: rearmor("PGP MESSAGE", "\n", clear), wantReason: "valid OpenPGP"},
		{name: "armored detached signature", sig: detached, untrusted: false, wantReason: "no literal data"},
		{name: "two armored messages, trusted signer first", sig: cat(armored, otherArmored), skopeo: true, pullgate: true, untrusted: true},
		{name: "two armored messages, other signer first", sig: cat(otherArmored, armored), untrusted: true, wantReason: "not trusted"},
		{name: "armored, then a clearsigned message", sig: cat(armored, otherClear), skopeo: true, pullgate: true, untrusted: true},
		{name: "armored, then binary", sig: cat(armored, binary), skopeo: true, pullgate: true, untrusted: true},
		{name: "clearsigned, text before and after", sig: cat([]byte("text\n"), clear, []byte("more text\n")), skopeo: true, pullgate: true, untrusted: true},
		{name: "clearsigned, then another clearsigned message", sig: cat(clear, otherClear), wantReason: "armored block"},
		{name: "clearsigned, then an armored message", sig: cat(clear, otherArmored), wantReason: "armored block"},
	}
	now := time.Now()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sigPath := filepath.Join(dir, "sig-"+strings.Repeat("x", i))
			testsupport.WriteFile(t, sigPath, tt.sig)
			out, errOut, err := g.Run(nil, "skopeo", "standalone-verify", manifestPath, identity, trusted, sigPath)
			skopeo := err == nil
			if err != nil && !strings.Contains(errOut, "Error verifying signature") {
				t.Fatalf("skopeo standalone-verify failed to run: %v\n%s%s", err, out, errOut)
			}
			if skopeo != tt.skopeo {
				t.Fatalf("skopeo accepted=%v, the table says %v: %s", skopeo, tt.skopeo, strings.TrimSpace(errOut))
			}
			v, err := ring.Verify(tt.sig, now)
			if accepted := err == nil; accepted != tt.pullgate {
				t.Fatalf("pullgate accepted=%v (%v), want %v; skopeo accepted=%v", accepted, err, tt.pullgate, skopeo)
			}
			if err == nil && v.KeyFingerprint != trusted {
				t.Fatalf("accepted for key %s, want %s", v.KeyFingerprint, trusted)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantReason) {
				t.Fatalf("pullgate's reason %q does not say %q", err, tt.wantReason)
			}
			if tt.pullgate != tt.skopeo && tt.differs == "" {
				t.Fatalf("pullgate and skopeo disagree and the table gives no reason")
			}
			if _, err := UntrustedPayload(tt.sig); (err == nil) != tt.untrusted {
				t.Fatalf("UntrustedPayload error = %v, want accepted=%v", err, tt.untrusted)
			}
		})
	}
}
