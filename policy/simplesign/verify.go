package simplesign

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/pullgate/pullgate/policy/payload"
)

// maxPayloadSize bounds the signed payload, after decompression. Real payloads are a few
// hundred bytes; the bound stops a small compressed packet from expanding without limit.
// It equals the 4 MiB cap containers/image puts on a whole signature.
const maxPayloadSize = 4 << 20

// refusedDigests are the message digests a signature may not use, although go-crypto's v1
// API verifies them (it ignores Config.RejectMessageHashAlgorithms): SHA-1 has practical
// chosen-prefix collisions (SHAmbles, 2020), so a SHA-1 signature over one payload is also
// one over a colliding payload crafted with it; MD5 and RIPEMD-160 are weaker still.
// containers/image accepts SHA-1; pullgate does not (DESIGN.md differences).
var refusedDigests = map[crypto.Hash]string{
	crypto.MD5:       "MD5",
	crypto.SHA1:      "SHA-1",
	crypto.RIPEMD160: "RIPEMD-160",
}

// refusedDigestIDs names the same digests by their OpenPGP algorithm ID (RFC 4880 9.4).
// go-crypto cannot parse MD5 or RIPEMD-160 packets at all and drops them, so such a message
// is refused anyway; the ID only lets the reason say why.
var refusedDigestIDs = map[int]string{1: "MD5", 2: "SHA-1", 3: "RIPEMD-160"}

// ErrRejected is wrapped by every error that rejects a signature (as opposed to a
// problem with the keyring).
var ErrRejected = errors.New("simple signing signature rejected")

// UnknownKeyError rejects a signature made by a key that is not in the keyring.
type UnknownKeyError struct {
	// KeyID is the 64-bit key ID the signature names (untrusted).
	KeyID uint64
}

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("signed by key ID %016X, which is not trusted", e.KeyID)
}

// Is makes errors.Is(err, ErrRejected) true.
func (e *UnknownKeyError) Is(target error) bool { return target == ErrRejected }

// rejection is a rejection reason that wraps ErrRejected without repeating its text.
type rejection struct{ err error }

func (r *rejection) Error() string        { return r.err.Error() }
func (r *rejection) Unwrap() error        { return r.err }
func (r *rejection) Is(target error) bool { return target == ErrRejected }

func reject(format string, args ...any) error {
	return &rejection{err: fmt.Errorf(format, args...)}
}

// Verified is a signature whose cryptography checked out against a trusted key. Its
// payload claims a manifest digest and an identity; whether they fit the image being
// evaluated is for the caller to decide.
type Verified struct {
	// KeyFingerprint is the uppercase hex fingerprint of the trusted primary key.
	KeyFingerprint string
	// SignerFingerprint is the fingerprint of the key that made the signature: the primary
	// key, or one of its signing subkeys.
	SignerFingerprint string
	// Payload holds the signed claims, parsed strictly. Its digest and identity must still
	// be compared with the image.
	Payload payload.Untrusted
}

// Verify checks untrustedSignature, an OpenPGP signed message (gpg --sign output, binary
// or armored, or the old form with the signature packet before the literal data, or a
// clearsigned message: gpgme takes them all, armor.go, oldstyle.go), against the keyring
// at time now, then parses the signed payload. A signature is accepted only if it carries
// exactly one signature, made by a trusted key or a signing subkey of one, neither
// revoked nor expired nor created after now, not older than its key and not dated more
// than maxClockSkew after now, that verifies over the included data; encrypted and
// unsigned messages are refused. Which keys may sign follows gpg (signingKeys). Every
// rejection wraps ErrRejected.
func (k *Keyring) Verify(untrustedSignature []byte, now time.Time) (Verified, error) {
	if len(k.entities) == 0 {
		return Verified{}, reject("no public keys imported")
	}
	config := &packet.Config{
		Time:                       func() time.Time { return now },
		MaxDecompressedMessageSize: payloadLimit(),
	}
	keys := signingKeys(k.entities)
	env, err := openEnvelope(untrustedSignature)
	if err != nil {
		return Verified{}, err
	}
	var (
		v       Verified
		content []byte
	)
	if env.clearsigned != nil {
		v, content, err = verifyClearsigned(keys, env.clearsigned, config, now)
	} else {
		v, content, err = verifyMessage(keys, env.binary, config, now)
	}
	if err != nil {
		return Verified{}, err
	}
	// Only now, with the signature verified, is the content parsed.
	claims, err := payload.Parse(content, payload.Options{Type: payload.TypeSimpleSigning})
	if err != nil {
		return Verified{}, reject("%w", err)
	}
	v.Payload = claims
	return v, nil
}

func verifyMessage(keys signingKeys, untrustedSignature []byte, config *packet.Config, now time.Time) (Verified, []byte, error) {
	// go-crypto skips signature packets that come before the literal data: count them.
	switch form := leadingSignatures(untrustedSignature); {
	case form.oldStyle > 0 && form.onePass > 0:
		return Verified{}, nil, reject("the message carries %d signatures (old-style and one-pass), exactly one is required", form.oldStyle+form.onePass)
	case form.oldStyle > 0:
		return verifyOldStyle(keys, untrustedSignature, config, now)
	}
	md, err := openpgp.ReadMessage(bytes.NewReader(untrustedSignature), keys, nil, config)
	if err != nil {
		if weak := refusedDigestIn(untrustedSignature); weak != nil {
			return Verified{}, nil, weak
		}
		return Verified{}, nil, reject("not a valid OpenPGP signed message: %v", err)
	}
	if md.IsEncrypted {
		return Verified{}, nil, reject("the message is encrypted, not signed")
	}
	if !md.IsSigned {
		// go-crypto drops signature packets whose digest it does not know (MD5, RIPEMD-160),
		// which leaves the message looking unsigned.
		if weak := refusedDigestIn(untrustedSignature); weak != nil {
			return Verified{}, nil, weak
		}
		return Verified{}, nil, reject("the message is not signed")
	}
	// go-crypto checks the signature only once the body has been read to EOF.
	untrustedContent, err := io.ReadAll(io.LimitReader(md.UnverifiedBody, maxPayloadSize+1))
	if err != nil {
		return Verified{}, nil, reject("reading the signed data: %v", err)
	}
	if len(untrustedContent) > maxPayloadSize {
		return Verified{}, nil, reject("signed data larger than %d bytes", maxPayloadSize)
	}
	// SignatureError is nil when the signing key is unknown: only SignedBy tells.
	if md.SignedBy == nil {
		if md.SignatureError != nil {
			return Verified{}, nil, signatureError(md.SignatureError)
		}
		return Verified{}, nil, unusableKey(keys, md.SignedByKeyId)
	}
	if md.Signature == nil || md.Signature.IssuerKeyId == nil || *md.Signature.IssuerKeyId != md.SignedBy.PublicKey.KeyId {
		if md.SignatureError != nil {
			return Verified{}, nil, signatureError(md.SignatureError)
		}
		return Verified{}, nil, reject("no signature by the announced key")
	}
	// The signature verified unless SignatureError is one of the details go-crypto checks
	// after the cryptography (revocation, expiry, dates).
	if md.SignatureError != nil && !afterCryptography(md.SignatureError) {
		return Verified{}, nil, signatureError(md.SignatureError)
	}
	if err := timeVerdict(*md.SignedBy, md.Signature, md.SignatureError, now); err != nil {
		return Verified{}, nil, err
	}
	// The digest of the packet that verified: go-crypto's v1 API accepts SHA-1 here.
	if err := checkDigest(md.Signature); err != nil {
		return Verified{}, nil, err
	}
	if n := len(md.UnverifiedSignatures); n != 0 {
		return Verified{}, nil, reject("the message carries %d signatures, exactly one is required", n+1)
	}
	return Verified{
		KeyFingerprint:    fingerprint(md.SignedBy.Entity.PrimaryKey.Fingerprint),
		SignerFingerprint: fingerprint(md.SignedBy.PublicKey.Fingerprint),
	}, untrustedContent, nil
}

// verifyOldStyle verifies a message in the old, non one-pass form (oldstyle.go).
func verifyOldStyle(keys signingKeys, untrustedSignature []byte, config *packet.Config, now time.Time) (Verified, []byte, error) {
	sig, untrustedContent, err := parseOldStyle(untrustedSignature)
	if err != nil {
		return Verified{}, nil, err
	}
	if err := checkDigest(sig); err != nil {
		return Verified{}, nil, err
	}
	if sig.IssuerKeyId == nil {
		return Verified{}, nil, reject("the signature names no issuer key")
	}
	// The parsed packet, serialized again, is what the detached verifier reads; its
	// hashed part is the one that was parsed, so a signature over other bytes fails.
	var sigPacket bytes.Buffer
	if err := sig.Serialize(&sigPacket); err != nil {
		return Verified{}, nil, reject("invalid signature: %v", err)
	}
	v, err := verifyDetached(keys, *sig.IssuerKeyId, untrustedContent, sigPacket.Bytes(), config, now)
	if err != nil {
		return Verified{}, nil, err
	}
	return v, untrustedContent, nil
}

func verifyClearsigned(keys signingKeys, block *clearsign.Block, config *packet.Config, now time.Time) (Verified, []byte, error) {
	untrustedSig, err := io.ReadAll(io.LimitReader(block.ArmoredSignature.Body, maxPayloadSize+1))
	if err != nil {
		return Verified{}, nil, reject("reading the clearsigned signature: %v", err)
	}
	if len(untrustedSig) > maxPayloadSize {
		return Verified{}, nil, reject("clearsigned signature larger than %d bytes", maxPayloadSize)
	}
	issuer, err := onlySignature(untrustedSig)
	if err != nil {
		return Verified{}, nil, err
	}
	v, err := verifyDetached(keys, issuer, block.Bytes, untrustedSig, config, now)
	if err != nil {
		return Verified{}, nil, err
	}
	return v, block.Plaintext, nil
}

// verifyDetached verifies sigPacket, one signature packet naming issuer, over signed.
func verifyDetached(keys signingKeys, issuer uint64, signed, sigPacket []byte, config *packet.Config, now time.Time) (Verified, error) {
	sig, signer, err := openpgp.VerifyDetachedSignature(keys, bytes.NewReader(signed), bytes.NewReader(sigPacket), config)
	if errors.Is(err, pgperrors.ErrUnknownIssuer) {
		return Verified{}, unusableKey(keys, issuer)
	}
	if sig == nil || signer == nil || (err != nil && !afterCryptography(err)) {
		return Verified{}, signatureError(err)
	}
	key, keyErr := signerKey(keys, issuer, signer)
	if keyErr != nil {
		return Verified{}, keyErr
	}
	if err := timeVerdict(key, sig, err, now); err != nil {
		return Verified{}, err
	}
	return Verified{
		KeyFingerprint:    fingerprint(signer.PrimaryKey.Fingerprint),
		SignerFingerprint: fingerprint(key.PublicKey.Fingerprint),
	}, nil
}

// afterCryptography reports whether err is one of the verdicts go-crypto reaches only
// after a signature has verified cryptographically (checkMessageSignatureDetails).
func afterCryptography(err error) bool {
	return errors.Is(err, pgperrors.ErrSignatureExpired) || errors.Is(err, pgperrors.ErrKeyExpired) ||
		errors.Is(err, pgperrors.ErrKeyRevoked)
}

// onlySignature checks that data holds exactly one signature packet, with an accepted
// digest, and returns the key ID it names. That packet is the one CheckDetachedSignature
// then verifies.
func onlySignature(data []byte) (uint64, error) {
	packets := packet.NewReader(bytes.NewReader(data))
	var sigs []*packet.Signature
	for {
		p, err := packets.NextWithUnsupported()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, reject("invalid clearsigned signature: %v", err)
		}
		if u, ok := p.(*packet.UnsupportedPacket); ok {
			if weak := unsupportedDigest(u); weak != nil {
				return 0, weak
			}
			return 0, reject("invalid clearsigned signature: %v", u.Error)
		}
		sig, ok := p.(*packet.Signature)
		if !ok {
			return 0, reject("invalid clearsigned signature: unexpected %T packet", p)
		}
		sigs = append(sigs, sig)
	}
	if len(sigs) != 1 {
		return 0, reject("the message carries %d signatures, exactly one is required", len(sigs))
	}
	if sigs[0].IssuerKeyId == nil {
		return 0, reject("the signature names no issuer key")
	}
	if err := checkDigest(sigs[0]); err != nil {
		return 0, err
	}
	return *sigs[0].IssuerKeyId, nil
}

// checkDigest refuses a signature whose message digest is in refusedDigests.
func checkDigest(sig *packet.Signature) error {
	if name, weak := refusedDigests[sig.Hash]; weak {
		return weakDigest(name)
	}
	return nil
}

func weakDigest(name string) error {
	return reject("the signature uses %s, which pullgate does not accept", name)
}

// maxDigestScanPackets bounds the packets refusedDigestIn looks at; a signed message has
// three or four (compressed data, one-pass signature, literal data, signature).
const maxDigestScanPackets = 16

// refusedDigestIn looks through a message that go-crypto has already refused or found
// unsigned for a signature packet with a refused digest, to give the reason; nil when
// there is none. It decides nothing: the message is refused either way.
func refusedDigestIn(untrustedSignature []byte) error {
	packets := packet.NewReader(bytes.NewReader(untrustedSignature))
	for range maxDigestScanPackets {
		p, err := packets.NextWithUnsupported()
		if err != nil {
			return nil
		}
		switch p := p.(type) {
		case *packet.UnsupportedPacket:
			if weak := unsupportedDigest(p); weak != nil {
				return weak
			}
		case *packet.OnePassSignature:
			if name, weak := refusedDigests[p.Hash]; weak {
				return weakDigest(name)
			}
		case *packet.Signature:
			if err := checkDigest(p); err != nil {
				return err
			}
		case *packet.Compressed:
			if packets.Push(io.LimitReader(p.Body, maxPayloadSize)) != nil {
				return nil
			}
		case *packet.LiteralData:
			// Skip the data to reach the signature packets after it.
			if _, err := io.Copy(io.Discard, io.LimitReader(p.Body, maxPayloadSize+1)); err != nil {
				return nil
			}
		}
	}
	return nil
}

// unsupportedDigest names the refused digest of a one-pass signature or signature packet
// go-crypto could not parse, from the algorithm ID its error reports ("hash function: 1",
// "hash function 1"); nil for any other packet or error.
func unsupportedDigest(u *packet.UnsupportedPacket) error {
	switch u.IncompletePacket.(type) {
	case *packet.OnePassSignature, *packet.Signature:
	default:
		return nil
	}
	msg := u.Error.Error()
	i := strings.LastIndex(msg, "hash function")
	if i < 0 {
		return nil
	}
	id, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(msg[i+len("hash function"):], ":")))
	if err != nil {
		return nil
	}
	if name, weak := refusedDigestIDs[id]; weak {
		return weakDigest(name)
	}
	return nil
}

// signatureError turns go-crypto's verdict on a signature into a rejection that says why.
func signatureError(err error) error {
	switch {
	case errors.Is(err, pgperrors.ErrSignatureExpired):
		return reject("the signature has expired")
	case errors.Is(err, pgperrors.ErrKeyExpired):
		return reject("the signing key has expired")
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		return reject("the signing key has been revoked")
	}
	return reject("invalid signature: %v", err)
}
