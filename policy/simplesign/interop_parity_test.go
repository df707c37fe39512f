package simplesign

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
)

// TestInteropGpgmeParity makes the vectors of TestVerifyGpgmeParity with real gpg
// (--faked-system-time for the dates, pgptest for the keys gpg cannot make, imported with
// their secret parts so that gpg signs with them) and checks each with `skopeo
// standalone-verify`, which verifies through gpgme as podman does by default, and with
// pullgate. The verdicts must agree, except on the rows marked as a deliberate difference
// (DESIGN.md).
func TestInteropGpgmeParity(t *testing.T) {
	g := newGPGHome(t)
	now := time.Now()
	keyTime := now.Add(-10 * 24 * time.Hour)
	signer := g.genKey("Parity Signer", "parity@example.test", keyTime)
	other := g.genKey("Other Signer", "other@example.test", keyTime)
	future := g.genKey("Future Signer", "future@example.test", now.Add(time.Hour))

	noFlags := pgptest.NewKey(t, "no-flags", pgptest.KeyOptions{Created: keyTime, NoFlags: true})
	flagless := pgptest.NewKey(t, "flagless-subkeys", pgptest.KeyOptions{Created: keyTime})
	sub := flagless.AddSubkey(t, pgptest.SubkeyOptions{Created: keyTime, NoFlags: true})
	subNoX := flagless.AddSubkey(t, pgptest.SubkeyOptions{Created: keyTime, NoFlags: true, NoCrossSignature: true})
	certifyOnly := pgptest.NewKey(t, "certify-only", pgptest.KeyOptions{Created: keyTime, CertifyOnly: true})
	for _, k := range []*pgptest.Key{noFlags, flagless, certifyOnly} {
		g.importKey(k.Private(t))
	}
	subFpr, subNoXFpr := fingerprint(sub.Fingerprint), fingerprint(subNoX.Fingerprint)

	ring, err := ParseKeyring(g.run("", "--export"))
	if err != nil {
		t.Fatal(err)
	}
	if ring.Len() != 6 {
		t.Fatalf("the exported keyring holds %d keys, want 6", ring.Len())
	}

	const identity = "quay.io/example/app:1"
	manifestPath, payload := writeInteropManifest(t, g.dir, identity)
	payloadPath := filepath.Join(g.dir, "payload.json")
	testsupport.WriteFile(t, payloadPath, payload)
	// sign runs gpg on the payload as user (a fingerprint, "!" for a subkey) with args,
	// at fakedTime unless it is zero.
	sign := func(user string, fakedTime time.Time, args ...string) []byte {
		if !fakedTime.IsZero() {
			args = append([]string{"--faked-system-time", strconv.FormatInt(fakedTime.Unix(), 10) + "!"}, args...)
		}
		out := filepath.Join(g.dir, "out.gpg")
		g.run("", append(append([]string{"--yes", "--local-user", user, "--output", out}, args...), payloadPath)...)
		return testsupport.ReadFile(t, out)
	}
	// The old form as gpg makes it: a detached signature, then the literal data packet
	// `gpg --store` writes.
	store := func(compress string) []byte {
		out := filepath.Join(g.dir, "literal.gpg")
		g.run("", "--yes", "-z", compress, "--output", out, "--store", payloadPath)
		return testsupport.ReadFile(t, out)
	}
	oldStyle := append(sign(signer, time.Time{}, "--detach-sign"), store("0")...)

	tests := []struct {
		name          string
		sig           []byte
		skopeoKey     string // the fingerprint gpgme reports for the signing key
		skopeoAccepts bool
		wantKey       string // pullgate accepts, with this primary key
		wantSigner    string // and this signing key (empty: wantKey)
		wantErr       string // pullgate refuses, with this reason
		difference    bool   // a deliberate difference, documented in DESIGN.md
	}{
		// 1.
		{name: "signature made before its key was created", sig: sign(signer, keyTime.Add(-24*time.Hour), "--ignore-time-conflict", "--sign"),
			skopeoKey: signer, wantErr: wantTimeConflict},
		{name: "key created in the future", sig: sign(future, now.Add(time.Hour), "--sign"),
			skopeoKey: future, wantErr: wantKeyInFuture},
		// 2.
		{name: "signature an hour ahead", sig: sign(signer, now.Add(time.Hour), "--sign"),
			skopeoKey: signer, skopeoAccepts: true, wantKey: signer},
		{name: "signature two days ahead", sig: sign(signer, now.Add(48*time.Hour), "--sign"),
			skopeoKey: signer, skopeoAccepts: true, wantErr: wantTooFarAhead, difference: true},
		// 3.
		{name: "primary key without key flags", sig: sign(noFlags.Fingerprint(), time.Time{}, "--sign"),
			skopeoKey: noFlags.Fingerprint(), skopeoAccepts: true, wantKey: noFlags.Fingerprint()},
		{name: "subkey without key flags, cross-certified", sig: sign(subFpr+"!", time.Time{}, "--sign"),
			skopeoKey: subFpr, skopeoAccepts: true, wantKey: flagless.Fingerprint(), wantSigner: subFpr},
		{name: "subkey without key flags, not cross-certified", sig: sign(subNoXFpr+"!", time.Time{}, "--sign"),
			skopeoKey: subNoXFpr, wantErr: wantNoCrossSig},
		// gpg will not sign with it: go-crypto makes the signature.
		{name: "primary key flagged certify-only", sig: pgptest.Sign(t, payload, pgptest.SignOptions{Signers: []*packet.PrivateKey{certifyOnly.Primary()}}),
			skopeoKey: certifyOnly.Fingerprint(), wantErr: wantNoSignFlag},
		// 4.
		{name: "old-style signature", sig: oldStyle,
			skopeoKey: signer, skopeoAccepts: true, wantKey: signer},
		{name: "old-style signature, compressed", sig: pgptest.Compressed(t, oldStyle),
			skopeoKey: signer, skopeoAccepts: true, wantKey: signer},
		{name: "old-style signature before compressed literal data", sig: append(sign(signer, time.Time{}, "--detach-sign"), store("6")...),
			skopeoKey: signer, wantErr: "compressed data after the signature"},
		{name: "old-style signature before a one-pass signed message", sig: append(sign(other, time.Time{}, "--detach-sign"), sign(signer, time.Time{}, "-z", "0", "--sign")...),
			skopeoKey: signer, wantErr: "exactly one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sigPath := filepath.Join(g.dir, "sig")
			testsupport.WriteFile(t, sigPath, tt.sig)
			out, errOut, err := g.Run(nil, "skopeo", "standalone-verify", manifestPath, identity, tt.skopeoKey, sigPath)
			if skopeoAccepts := err == nil; skopeoAccepts != tt.skopeoAccepts {
				t.Fatalf("skopeo standalone-verify accepted=%v, want %v (the gpgme verdict this row pins): %v\n%s%s", skopeoAccepts, tt.skopeoAccepts, err, out, errOut)
			}
			v, err := ring.Verify(tt.sig, time.Now())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("pullgate: Verify() = %+v, %v; want an error containing %q", v, err, tt.wantErr)
				}
			} else {
				wantSigner := tt.wantSigner
				if wantSigner == "" {
					wantSigner = tt.wantKey
				}
				if err != nil || v.KeyFingerprint != tt.wantKey || v.SignerFingerprint != wantSigner {
					t.Fatalf("pullgate: Verify() = %+v, %v; want accepted for %s (signer %s)", v, err, tt.wantKey, wantSigner)
				}
			}
			if agree := (err == nil) == tt.skopeoAccepts; agree == tt.difference {
				t.Fatalf("pullgate accepted=%v, skopeo accepted=%v, deliberate difference=%v", err == nil, tt.skopeoAccepts, tt.difference)
			}
		})
	}
}

// gpgHome is a pgptest.GnuPG home for comparisons with skopeo, with a scratch directory
// for files.
type gpgHome struct {
	*pgptest.GnuPG
	t   *testing.T
	dir string
}

func newGPGHome(t *testing.T) *gpgHome {
	t.Helper()
	g, _ := pgptest.NewSkopeoGnuPG(t)
	return &gpgHome{GnuPG: g, t: t, dir: t.TempDir()}
}

// run runs gpg in batch mode and returns its standard output.
func (g *gpgHome) run(stdin string, args ...string) []byte {
	g.t.Helper()
	return g.MustRun(g.t, []byte(stdin), "gpg", append([]string{"--batch"}, args...)...)
}

// genKey makes an unprotected Ed25519 signing key created at created and returns its
// fingerprint.
func (g *gpgHome) genKey(name, email string, created time.Time) string {
	g.t.Helper()
	g.run("", "--quiet", "--passphrase", "", "--faked-system-time", strconv.FormatInt(created.Unix(), 10)+"!",
		"--quick-gen-key", name+" <"+email+">", "ed25519", "sign", "never")
	for _, line := range strings.Split(string(g.run("", "--with-colons", "--list-keys", email)), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" && len(f[9]) == 40 {
			return f[9]
		}
	}
	g.t.Fatalf("no fingerprint for the key of %s", email)
	return ""
}

// importKey imports a key, with its secret parts if it has them.
func (g *gpgHome) importKey(key []byte) {
	g.t.Helper()
	path := filepath.Join(g.dir, "import.gpg")
	if err := os.WriteFile(path, key, 0o600); err != nil {
		g.t.Fatal(err)
	}
	g.run("", "--quiet", "--import", path)
}
