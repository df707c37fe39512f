package simplesign

import (
	"bytes"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
)

// TestInteropKeyFileBlocks writes key files the way operators make them from real gpg
// output (several `gpg --armor --export` outputs in one file, concatenated binary
// exports, notes around the blocks, and broken variants), imports each with
// `gpg --import` into a fresh GnuPG home (what gpgme, podman's default backend, does with
// a policy's key file) and requires ParseKeyring to trust the same keys, or to fail
// naming the block where gpg drops keys or imports nothing. A signature by the second key
// of a two-block file is then checked with `skopeo standalone-verify` against the home
// the file was imported into, and with pullgate.
func TestInteropKeyFileBlocks(t *testing.T) {
	g, fprs := pgptest.NewSkopeoGnuPG(t, "first", "second")
	first, second := fprs[0], fprs[1]
	a, b := g.Export(t, first, true), g.Export(t, second, true)
	aBin, bBin := g.Export(t, first, false), g.Export(t, second, false)
	msg := g.Sign(t, second, []byte("not a key"), "--armor", "--sign")
	checksum := regexp.MustCompile(`(?m)^=[A-Za-z0-9+/]{4}\n`)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	both := []string{first, second}

	tests := []struct {
		name    string
		data    []byte
		gpg     []string // the keys gpg --import imports (checked)
		want    []string // the keys pullgate trusts; nil: ParseKeyring fails
		wantErr string   // part of ParseKeyring's error
		differs string   // why pullgate's result differs from gpg's
	}{
		{name: "one armored block", data: a, gpg: []string{first}, want: []string{first}},
		{name: "two armored blocks", data: cat(a, b), gpg: both, want: both},
		{name: "two armored blocks, CRLF", data: bytes.ReplaceAll(cat(a, b), []byte("\n"), []byte("\r\n")), gpg: both, want: both},
		{name: "two armored blocks with notes around them", data: cat([]byte("Release keys\n\n"), a, []byte("\nThe second one:\n"), b, []byte("end\n")), gpg: both, want: both},
		{name: "two binary exports", data: cat(aBin, bBin), gpg: both, want: both},
		{name: "armored block, then a binary export", data: cat(a, bBin), gpg: []string{first}, want: []string{first}},
		{name: "binary export, then an armored block", data: cat(aBin, b), gpg: nil, wantErr: "key 1: openpgp: invalid data"},
		{name: "second block with a wrong checksum", data: cat(a, checksum.ReplaceAll(b, []byte("=AAAA\n"))), gpg: nil, wantErr: "armored block 2: armor checksum mismatch"},
		{name: "second block without a checksum", data: cat(a, checksum.ReplaceAll(b, nil)), gpg: both, want: both},
		{name: "two blocks joined on one line", data: cat(bytes.TrimSuffix(a, []byte("\n")), b), gpg: []string{first}, wantErr: "armored block 1: invalid armor END line",
			differs: "gpg reads the joined line as the first block's END line and loses the second block; pullgate refuses the file"},
		{name: "second block holds no key", data: cat(a, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\ngarbage\n-----END PGP PUBLIC KEY BLOCK-----\n")), gpg: []string{first}, wantErr: "armored block 2",
			differs: "gpg drops the block and imports the rest; a block pullgate cannot read is a start-up error, never a key left out"},
		{name: "second block is a signed message", data: cat(a, msg), gpg: []string{first}, wantErr: `armored block 2 is labelled "PGP MESSAGE"`,
			differs: "gpg drops the block; pullgate refuses the file"},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "keys-"+strings.Repeat("x", i))
			testsupport.WriteFile(t, path, tt.data)
			if got := gpgImport(t, path); !slices.Equal(got, tt.gpg) {
				t.Fatalf("gpg --import imported %v, the table says %v", got, tt.gpg)
			}
			k, err := ParseKeyring(tt.data)
			if tt.want == nil {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseKeyring() = %v, %v; want an error saying %q", k, err, tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "reading OpenPGP keyring: ") {
					t.Fatalf("error %q does not say it is about the keyring", err)
				}
			} else {
				if err != nil {
					t.Fatalf("ParseKeyring() error = %v", err)
				}
				if got := k.Fingerprints(); !slices.Equal(got, tt.want) {
					t.Fatalf("pullgate trusts %v, want %v", got, tt.want)
				}
			}
			if !slices.Equal(tt.want, tt.gpg) && tt.differs == "" {
				t.Fatalf("pullgate and gpg disagree and the table gives no reason")
			}
		})
	}

	t.Run("skopeo standalone-verify, signature by the second key", func(t *testing.T) {
		const identity = "quay.io/example/app:1"
		manifestPath, payload := writeInteropManifest(t, dir, identity)
		sigPath := filepath.Join(dir, "second.sig")
		keysPath := filepath.Join(dir, "two-blocks.asc")
		sig := g.Sign(t, second, payload, "--sign")
		for path, data := range map[string][]byte{sigPath: sig, keysPath: cat(a, b)} {
			testsupport.WriteFile(t, path, data)
		}
		verifier := pgptest.NewGnuPG(t)
		verifier.MustRun(t, nil, "gpg", "--batch", "--import", keysPath)
		if out, errOut, err := verifier.Run(nil, "skopeo", "standalone-verify", manifestPath, identity, second, sigPath); err != nil {
			t.Fatalf("skopeo standalone-verify refused the second key's signature: %v\n%s%s", err, out, errOut)
		}
		ring, err := ParseKeyring(cat(a, b))
		if err != nil {
			t.Fatal(err)
		}
		if v, err := ring.Verify(sig, time.Now()); err != nil || v.KeyFingerprint != second {
			t.Fatalf("pullgate: Verify() = %+v, %v; want accepted for %s", v, err, second)
		}
	})
}

// gpgImport imports the key file at path into a fresh GnuPG home and returns the
// fingerprints of the primary keys gpg then holds, in import order; nil when gpg imported
// none (gpg --import's exit status is not looked at: it fails on a bad block after
// importing the good ones).
func gpgImport(t *testing.T, path string) []string {
	t.Helper()
	home := pgptest.NewGnuPG(t)
	home.Run(nil, "gpg", "--batch", "--import", path)
	list, _, _ := home.Run(nil, "gpg", "--batch", "--with-colons", "--list-keys")
	var fprs []string
	primary := false
	for _, line := range strings.Split(string(list), "\n") {
		f := strings.Split(line, ":")
		switch {
		case f[0] == "pub":
			primary = true
		case f[0] == "sub":
			primary = false
		case f[0] == "fpr" && primary && len(f) > 9:
			fprs = append(fprs, f[9])
			primary = false
		}
	}
	return fprs
}
