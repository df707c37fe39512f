// Package pgptest makes OpenPGP keys and signed messages for tests: valid ones and the
// many broken shapes a verifier must refuse (unknown keys, subkeys, revoked and expired
// keys, expired signatures, several signatures, unsigned data). Keys are generated fresh
// with go-crypto; nothing here is for production use.
package pgptest

import (
	"bytes"
	"crypto"
	"io"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Key is a generated OpenPGP key with its private parts.
type Key struct {
	Entity *openpgp.Entity
}

// KeyOptions tunes NewKey.
type KeyOptions struct {
	// RSABits selects an RSA key of that size; zero means Ed25519 (fast).
	RSABits int
	// Created is the key creation time; zero means now.
	Created time.Time
	// Lifetime makes the key expire that long after Created; zero means never.
	Lifetime time.Duration
	// NoFlags leaves the key-flags subpacket out of the primary key's self-signatures,
	// as old gpg versions and some tools write keys. The key's usage then follows from
	// its algorithm (gpg) or is none at all (go-crypto's filter).
	NoFlags bool
	// CertifyOnly gives the primary key's self-signatures key flags that allow
	// certifying only: the key may not make data signatures.
	CertifyOnly bool
}

// NewKey generates a key whose primary key can certify and sign.
func NewKey(t testing.TB, name string, opts KeyOptions) *Key {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", name+"@example.test", opts.config())
	if err != nil {
		t.Fatalf("pgptest: generating key %q: %v", name, err)
	}
	if opts.NoFlags || opts.CertifyOnly {
		for _, id := range e.Identities {
			sig := id.SelfSignature
			sig.FlagsValid, sig.FlagCertify, sig.FlagSign = opts.CertifyOnly, opts.CertifyOnly, false
			sig.FlagEncryptCommunications, sig.FlagEncryptStorage = false, false
			if err := sig.SignUserId(id.UserId.Id, e.PrimaryKey, e.PrivateKey, opts.config()); err != nil {
				t.Fatalf("pgptest: re-signing %q with new flags: %v", name, err)
			}
		}
	}
	return &Key{Entity: e}
}

func (o KeyOptions) config() *packet.Config {
	c := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA}
	if o.RSABits != 0 {
		c.Algorithm = packet.PubKeyAlgoRSA
		c.RSABits = o.RSABits
	}
	if !o.Created.IsZero() {
		created := o.Created
		c.Time = func() time.Time { return created }
	}
	if o.Lifetime != 0 {
		c.KeyLifetimeSecs = uint32(o.Lifetime / time.Second)
	}
	return c
}

// Primary returns the private primary key.
func (k *Key) Primary() *packet.PrivateKey { return k.Entity.PrivateKey }

// Fingerprint returns the uppercase hex fingerprint of the primary key.
func (k *Key) Fingerprint() string { return hexUpper(k.Entity.PrimaryKey.Fingerprint) }

// AddSigningSubkey adds a signing subkey and returns its private key.
func (k *Key) AddSigningSubkey(t testing.TB) *packet.PrivateKey {
	t.Helper()
	if err := k.Entity.AddSigningSubkey(&packet.Config{Algorithm: packet.PubKeyAlgoEdDSA}); err != nil {
		t.Fatalf("pgptest: adding a signing subkey: %v", err)
	}
	return k.Entity.Subkeys[len(k.Entity.Subkeys)-1].PrivateKey
}

// SubkeyOptions tunes AddSubkey.
type SubkeyOptions struct {
	// NoFlags leaves the key-flags subpacket out of the binding signature.
	NoFlags bool
	// NoCrossSignature leaves out the subkey's embedded primary-key binding signature
	// (the "back signature" that shows the subkey consents to the binding).
	NoCrossSignature bool
	// Created is the subkey creation time; zero means now.
	Created time.Time
}

// AddSubkey adds an Ed25519 subkey bound as opts says and returns its private key. With
// a zero opts it is a flagged, cross-signed signing subkey, as AddSigningSubkey makes.
func (k *Key) AddSubkey(t testing.TB, opts SubkeyOptions) *packet.PrivateKey {
	t.Helper()
	config := KeyOptions{Created: opts.Created}.config()
	if err := k.Entity.AddSigningSubkey(config); err != nil {
		t.Fatalf("pgptest: adding a subkey: %v", err)
	}
	sub := &k.Entity.Subkeys[len(k.Entity.Subkeys)-1]
	if opts.NoFlags {
		sub.Sig.FlagsValid, sub.Sig.FlagSign = false, false
	}
	if opts.NoCrossSignature {
		sub.Sig.EmbeddedSignature = nil
	}
	if err := sub.Sig.SignKey(sub.PublicKey, k.Entity.PrivateKey, config); err != nil {
		t.Fatalf("pgptest: binding a subkey: %v", err)
	}
	return sub.PrivateKey
}

// Private returns the key with its unprotected secret parts in binary form, as
// `gpg --export-secret-keys` writes it, for importing into gpg.
func (k *Key) Private(t testing.TB) []byte {
	t.Helper()
	var b bytes.Buffer
	// Without re-signing: the self-signatures stay exactly as built (flags, times).
	if err := k.Entity.SerializePrivateWithoutSigning(&b, nil); err != nil {
		t.Fatalf("pgptest: serializing a private key: %v", err)
	}
	return b.Bytes()
}

// RevokeSubkey revokes the subkey whose private key is sub.
func (k *Key) RevokeSubkey(t testing.TB, sub *packet.PrivateKey) {
	t.Helper()
	for i := range k.Entity.Subkeys {
		if k.Entity.Subkeys[i].PrivateKey == sub {
			if err := k.Entity.RevokeSubkey(&k.Entity.Subkeys[i], packet.KeyCompromised, "test", nil); err != nil {
				t.Fatalf("pgptest: revoking a subkey: %v", err)
			}
			return
		}
	}
	t.Fatalf("pgptest: no such subkey")
}

// Revoke revokes the primary key.
func (k *Key) Revoke(t testing.TB) {
	t.Helper()
	if err := k.Entity.RevokeKey(packet.KeyCompromised, "test", nil); err != nil {
		t.Fatalf("pgptest: revoking a key: %v", err)
	}
}

// Public returns the public key (with its subkeys, self-signatures and revocations) in
// binary form, as `gpg --export` writes it.
func (k *Key) Public(t testing.TB) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := k.Entity.Serialize(&b); err != nil {
		t.Fatalf("pgptest: serializing a public key: %v", err)
	}
	return b.Bytes()
}

// ArmoredPublic returns the public key ASCII-armored, as `gpg --armor --export` writes it.
func (k *Key) ArmoredPublic(t testing.TB) []byte {
	t.Helper()
	return bytes.TrimSuffix(Armor(t, openpgp.PublicKeyType, k.Public(t)), []byte("\n"))
}

// Armor returns data ASCII-armored under label (PGP MESSAGE, PGP SIGNATURE, ...) as
// go-crypto writes it, with the CRC-24 line, ending with a newline as gpg --armor does.
func Armor(t testing.TB, label string, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := writeAll(armor.Encode(&b, label, nil))(data); err != nil {
		t.Fatalf("pgptest: armoring: %v", err)
	}
	return append(b.Bytes(), '\n')
}

// Compressed wraps an OpenPGP message in a compressed-data packet (ZLIB), as gpg does
// by default.
func Compressed(t testing.TB, msg []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := writeAll(packet.SerializeCompressed(nopCloser{&b}, packet.CompressionZLIB, nil))(msg); err != nil {
		t.Fatalf("pgptest: compressing: %v", err)
	}
	return b.Bytes()
}

// writeAll returns a function writing data to w and closing it, or failing with the
// error that opening w returned.
func writeAll(w io.WriteCloser, err error) func(data []byte) error {
	return func(data []byte) error {
		if err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
		return w.Close()
	}
}

// SignOptions tunes Sign.
type SignOptions struct {
	// Signers make one signature each, nested (one-pass signature packets in order,
	// signature packets in reverse). Empty means an unsigned literal-data message.
	Signers []*packet.PrivateKey
	// Created is the signature creation time; zero means now.
	Created time.Time
	// Lifetime makes the signatures expire that long after Created; zero means never.
	Lifetime time.Duration
	// Compress wraps everything in a compressed-data packet, as gpg does by default.
	Compress bool
	// Hash is the message digest of every signature; zero means SHA-256. go-crypto can
	// write SHA-1 (what old gpg configurations still make) but not MD5 or RIPEMD-160.
	Hash crypto.Hash
	// Leading make one signature each written in the old, non one-pass form (RFC 4880
	// 11.3, as PGP 2 wrote it): their signature packets come before the literal data, and
	// no one-pass signature packet announces them. Leading alone makes an old-style
	// message; with Signers too, a message mixing both forms.
	Leading []*packet.PrivateKey
}

// Sign returns an OpenPGP message holding content as literal data, signed as opts says.
func Sign(t testing.TB, content []byte, opts SignOptions) []byte {
	t.Helper()
	out, err := sign(content, opts)
	if err != nil {
		t.Fatalf("pgptest: signing: %v", err)
	}
	return out
}

func sign(content []byte, opts SignOptions) ([]byte, error) {
	created := opts.Created
	if created.IsZero() {
		created = time.Now()
	}
	hash := opts.Hash
	if hash == 0 {
		hash = crypto.SHA256
	}
	config := hashConfig(hash)
	config.Time = func() time.Time { return created }
	var out bytes.Buffer
	var w io.WriteCloser = nopCloser{&out}
	if opts.Compress {
		cw, err := packet.SerializeCompressed(w, packet.CompressionZLIB, nil)
		if err != nil {
			return nil, err
		}
		w = cw
	}
	var sigs, leading []*packet.Signature
	for i := len(opts.Signers) - 1; i >= 0; i-- {
		sig, err := signature(opts.Signers[i], content, created, hash, opts.Lifetime, config)
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, sig)
	}
	for _, s := range opts.Leading {
		sig, err := signature(s, content, created, hash, opts.Lifetime, config)
		if err != nil {
			return nil, err
		}
		leading = append(leading, sig)
	}
	writeSigs := func(sigs []*packet.Signature) error {
		for _, sig := range sigs {
			if err := sig.Serialize(w); err != nil {
				return err
			}
		}
		return nil
	}
	if err := writeSigs(leading); err != nil {
		return nil, err
	}
	for i, s := range opts.Signers {
		ops := &packet.OnePassSignature{
			Version:    3,
			SigType:    packet.SigTypeBinary,
			Hash:       hash,
			PubKeyAlgo: s.PubKeyAlgo,
			KeyId:      s.KeyId,
			IsLast:     i == len(opts.Signers)-1,
		}
		if err := ops.Serialize(w); err != nil {
			return nil, err
		}
	}
	lw, err := packet.SerializeLiteral(nopCloser{w}, true, "", uint32(created.Unix()))
	if err != nil {
		return nil, err
	}
	if _, err := lw.Write(content); err != nil {
		return nil, err
	}
	if err := lw.Close(); err != nil {
		return nil, err
	}
	if err := writeSigs(sigs); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// signature makes a binary-document signature by s over content.
func signature(s *packet.PrivateKey, content []byte, created time.Time, hash crypto.Hash, lifetime time.Duration, config *packet.Config) (*packet.Signature, error) {
	keyID := s.KeyId
	sig := &packet.Signature{
		Version:      4,
		SigType:      packet.SigTypeBinary,
		PubKeyAlgo:   s.PubKeyAlgo,
		Hash:         hash,
		CreationTime: created,
		IssuerKeyId:  &keyID,
	}
	if lifetime != 0 {
		secs := uint32(lifetime / time.Second)
		sig.SigLifetimeSecs = &secs
	}
	h, err := sig.PrepareSign(config)
	if err != nil {
		return nil, err
	}
	h.Write(content)
	if err := sig.Sign(h, s, config); err != nil {
		return nil, err
	}
	return sig, nil
}

// ClearSign returns content clearsigned by signer (gpg --clearsign).
func ClearSign(t testing.TB, content []byte, signer *packet.PrivateKey) []byte {
	t.Helper()
	return ClearSignAt(t, content, signer, time.Time{})
}

// ClearSignAt is ClearSign with the signature made at created (zero: now).
func ClearSignAt(t testing.TB, content []byte, signer *packet.PrivateKey, created time.Time) []byte {
	t.Helper()
	var config *packet.Config
	if !created.IsZero() {
		config = &packet.Config{Time: func() time.Time { return created }}
	}
	var out bytes.Buffer
	w, err := clearsignEncode(&out, signer, config)
	if err == nil {
		_, err = w.Write(content)
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		t.Fatalf("pgptest: clearsigning: %v", err)
	}
	return out.Bytes()
}

// hashConfig signs with hash (go-crypto's clearsign writer refuses SHA-1; interop tests
// make such messages with gpg). go-crypto salts v4 signatures with a notation sized for
// the digest, which it defines for SHA-2 and SHA-3 only; other digests go unsalted, as
// gpg writes them.
func hashConfig(hash crypto.Hash) *packet.Config {
	c := &packet.Config{DefaultHash: hash}
	if _, err := packet.SaltLengthForHash(hash); hash != 0 && err != nil {
		salted := false
		c.NonDeterministicSignaturesViaNotation = &salted
	}
	return c
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func hexUpper(b []byte) string {
	const digits = "0123456789ABCDEF"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// Payload returns a simple-signing payload, formatted as containers/image writes it.
func Payload(manifestDigest, dockerReference string) []byte {
	return []byte(`{"critical":{"identity":{"docker-reference":"` + dockerReference +
		`"},"image":{"docker-manifest-digest":"` + manifestDigest +
		`"},"type":"atomic container signature"},"optional":{"creator":"atomic pgptest","timestamp":1700000000}}`)
}

// SimpleSignature is a complete simple signature, as skopeo --sign-by stores it: the
// payload for (manifestDigest, dockerReference), signed by key's primary key, compressed.
func SimpleSignature(t testing.TB, key *Key, manifestDigest, dockerReference string) []byte {
	t.Helper()
	return Sign(t, Payload(manifestDigest, dockerReference),
		SignOptions{Signers: []*packet.PrivateKey{key.Primary()}, Compress: true})
}
