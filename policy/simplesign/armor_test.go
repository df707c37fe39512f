package simplesign

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
)

// TestVerifyArmored is the table of signature forms Verify and UntrustedPayload tell
// apart (armor.go); the same forms made by real gpg are compared with skopeo in
// TestInteropArmoredSignatures.
func TestVerifyArmored(t *testing.T) {
	trusted := pgptest.NewKey(t, "trusted", pgptest.KeyOptions{})
	other := pgptest.NewKey(t, "other", pgptest.KeyOptions{})
	ring := mustKeyring(t, trusted)
	good := pgptest.Payload(testDigest, "example.com/a:1")
	binary := pgptest.Sign(t, good, pgptest.SignOptions{Signers: []*packet.PrivateKey{trusted.Primary()}, Compress: true})
	otherBinary := pgptest.Sign(t, good, pgptest.SignOptions{Signers: []*packet.PrivateKey{other.Primary()}})
	armored := pgptest.Armor(t, "PGP MESSAGE", binary)
	clear := pgptest.ClearSign(t, good, trusted.Primary())
	// A signed message whose armor is past the 4 MiB bound: incompressible data is not
	// needed, the bound is on the armored data before anything is parsed.
	huge := pgptest.Armor(t, "PGP MESSAGE", append(bytes.Clone(binary), make([]byte, maxDearmoredSignatureSize)...))

	tests := []struct {
		name      string
		sig       []byte
		wantErr   string // empty: accepted for trusted
		untrusted bool   // UntrustedPayload accepts it
	}{
		{"binary", binary, "", true},
		{"armored", armored, "", true},
		{"armored, CRLF", bytes.ReplaceAll(armored, []byte("\n"), []byte("\r\n")), "", true},
		{"armored, text around it", append(append([]byte("note\n"), armored...), "\nmore\n"...), "", true},
		{"armored PGP SIGNATURE label", pgptest.Armor(t, "PGP SIGNATURE", binary), "", true},
		{"armored, unknown label", pgptest.Armor(t, "PGP NOTES", binary), `labelled "PGP NOTES"`, false},
		{"armored, corrupt checksum", bytes.Replace(armored, []byte("\n="), []byte("\n=AA"), 1), "checksum", false},
		{"armored, data changed", bytes.Replace(armored, []byte("\n\n"), []byte("\n\nAAAA"), 1), "checksum mismatch", false},
		{"armored, invalid character", bytes.Replace(armored, []byte("\n\n"), []byte("\n\n*\n"), 1), "invalid armor line", false},
		{"armored, nothing after BEGIN", []byte("-----BEGIN PGP MESSAGE-----\n"), "no data", false},
		{"armored, empty", []byte("-----BEGIN PGP MESSAGE-----\n\n-----END PGP MESSAGE-----\n"), "valid OpenPGP", false},
		{"armored text", pgptest.Armor(t, "PGP MESSAGE", []byte("-----BEGIN PGP SIGNED MESSAGE-----\n")), "valid OpenPGP", false},
		{"armored, past the size bound", huge, "larger than", false},
		{"armored by an untrusted key", pgptest.Armor(t, "PGP MESSAGE", otherBinary), "not trusted", true},
		{"two armored blocks: the first counts", append(bytes.Clone(armored), pgptest.Armor(t, "PGP MESSAGE", otherBinary)...), "", true},
		{"clearsigned", clear, "", true},
		{"clearsigned, then an armored block", append(bytes.Clone(clear), armored...), "another armored block", false},
		{"clearsigned, then text", append(bytes.Clone(clear), "end\n"...), "", true},
		{"armored, then a clearsigned message", append(bytes.Clone(armored), pgptest.ClearSign(t, good, other.Primary())...), "", true},
		// go-crypto's clearsign.Decode looks for the header anywhere; in a binary message
		// it is data, not a clearsigned message.
		{"binary holding a clearsigned message", pgptest.Sign(t, append([]byte("x\n"), pgptest.ClearSign(t, good, trusted.Primary())...), pgptest.SignOptions{Signers: []*packet.PrivateKey{other.Primary()}}), "not trusted", false},
	}
	now := time.Now()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := ring.Verify(tt.sig, now)
			switch {
			case tt.wantErr == "":
				if err != nil || v.KeyFingerprint != trusted.Fingerprint() {
					t.Fatalf("Verify() = %+v, %v; want accepted", v, err)
				}
			case err == nil || !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Verify() error = %v, want %q", err, tt.wantErr)
			case !errors.Is(err, ErrRejected):
				t.Fatalf("error %v does not wrap ErrRejected", err)
			}
			if _, err := UntrustedPayload(tt.sig); (err == nil) != tt.untrusted {
				t.Fatalf("UntrustedPayload() error = %v, want accepted=%v", err, tt.untrusted)
			}
		})
	}
}

// TestCRC24 checks the armor checksum against the one go-crypto writes.
func TestCRC24(t *testing.T) {
	for _, data := range [][]byte{{}, {0}, []byte("pullgate"), bytes.Repeat([]byte{0xFF}, 1000)} {
		a := pgptest.Armor(t, "PGP MESSAGE", data)
		_, _, body, found := findArmor(a, 0)
		if !found {
			t.Fatalf("no BEGIN line in %q", a)
		}
		got, _, err := decodeArmor(a, body, len(a))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("decodeArmor(%q) = %x, %v; want %x", a, got, err, data)
		}
	}
}

func TestParseKeyringBlocks(t *testing.T) {
	k1 := pgptest.NewKey(t, "one", pgptest.KeyOptions{})
	k2 := pgptest.NewKey(t, "two", pgptest.KeyOptions{})
	k3 := pgptest.NewKey(t, "three", pgptest.KeyOptions{})
	// go-crypto ends its armor without a newline; gpg ends it with one.
	a1, a2 := append(k1.ArmoredPublic(t), '\n'), append(k2.ArmoredPublic(t), '\n')
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name    string
		data    []byte
		want    []*pgptest.Key
		wantErr string
	}{
		{"two armored blocks", cat(a1, a2), []*pgptest.Key{k1, k2}, ""},
		{"three blocks with text between", cat(a1, []byte("\n# second\n"), a2, []byte("\n"), k3.ArmoredPublic(t)), []*pgptest.Key{k1, k2, k3}, ""},
		{"one block of two keys", pgptest.Armor(t, "PGP PUBLIC KEY BLOCK", cat(k1.Public(t), k2.Public(t))), []*pgptest.Key{k1, k2}, ""},
		{"three binary exports", cat(k1.Public(t), k2.Public(t), k3.Public(t)), []*pgptest.Key{k1, k2, k3}, ""},
		{"second block corrupt", cat(a1, bytes.Replace(a2, []byte("\n="), []byte("\n=AA"), 1)), nil, "reading OpenPGP keyring: armored block 2: invalid armor checksum line"},
		{"second block empty", cat(a1, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n-----END PGP PUBLIC KEY BLOCK-----\n")), nil, "armored block 2 holds no key"},
		{"second block a message", cat(a1, pgptest.Armor(t, "PGP MESSAGE", k2.Public(t))), nil, `armored block 2 is labelled "PGP MESSAGE"`},
		{"second block truncated", cat(a1, a2[:len(a2)/2]), nil, "armored block 2: "},
		{"blocks joined without a newline", cat(k1.ArmoredPublic(t), a2), nil, "armored block 1: invalid armor END line"},
		{"binary keyring, second key truncated", cat(k1.Public(t), k2.Public(t)[:40]), nil, "reading OpenPGP keyring: key 1: "},
		{"binary keyring, trailing text", cat(k1.Public(t), []byte("trailing")), nil, "reading OpenPGP keyring: key 1: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKeyring(tt.data)
			if !testsupport.WantErr(t, err, tt.wantErr) {
				return
			}
			var want []string
			for _, key := range tt.want {
				want = append(want, key.Fingerprint())
			}
			if got := strings.Join(k.Fingerprints(), ","); got != strings.Join(want, ",") {
				t.Fatalf("fingerprints = %s, want %s", got, strings.Join(want, ","))
			}
		})
	}
}

// FuzzOpenEnvelope feeds arbitrary bytes to the form detection and dearmoring: it must
// never panic, errors must be rejections, and a dearmored message stays within the bound.
func FuzzOpenEnvelope(f *testing.F) {
	key := pgptest.NewKey(f, "fuzz", pgptest.KeyOptions{})
	payload := pgptest.Payload(testDigest, "example.com/a:1")
	binary := pgptest.Sign(f, payload, pgptest.SignOptions{Signers: []*packet.PrivateKey{key.Primary()}})
	armored := pgptest.Armor(f, "PGP MESSAGE", binary)
	clear := pgptest.ClearSign(f, payload, key.Primary())
	f.Add(binary)
	f.Add(armored)
	f.Add(clear)
	f.Add(append(bytes.Clone(clear), armored...))
	f.Add(append([]byte("text\n"), armored...))
	f.Add(bytes.ReplaceAll(armored, []byte("\n"), []byte("\r\n")))
	f.Add([]byte("-----BEGIN PGP MESSAGE-----\nVersion: 1\nowGb\n=AAAA\n"))
	f.Add([]byte("-----BEGIN PGP SIGNED MESSAGE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := openEnvelope(data)
		if err != nil {
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("error %v is not a rejection", err)
			}
			return
		}
		if env.clearsigned == nil && len(env.binary) > max(len(data), maxDearmoredSignatureSize) {
			t.Fatalf("dearmored %d bytes from %d", len(env.binary), len(data))
		}
	})
}

// FuzzParseKeyringBlocks feeds key files of several blocks, and mutations of them, to
// ParseKeyring: it must never panic, and a keyring it returns is never empty.
func FuzzParseKeyringBlocks(f *testing.F) {
	k1 := pgptest.NewKey(f, "one", pgptest.KeyOptions{})
	k2 := pgptest.NewKey(f, "two", pgptest.KeyOptions{})
	f.Add(append(k1.ArmoredPublic(f), k2.ArmoredPublic(f)...))
	f.Add(append(k1.Public(f), k2.Public(f)...))
	f.Add(append(k1.ArmoredPublic(f), k2.Public(f)...))
	f.Add([]byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n-----END PGP PUBLIC KEY BLOCK-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseKeyring(data)
		if err == nil && k.Len() == 0 {
			t.Fatal("an empty keyring parsed without error")
		}
	})
}
