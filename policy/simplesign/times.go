package simplesign

import (
	"errors"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// timeVerdict decides on the dates of a signature whose cryptography verified against
// key, given go-crypto's check of its details at now (detailsErr). go-crypto and gpg
// disagree on dates both ways, and pullgate follows gpg, the backend podman uses by
// default:
//   - a signature older than its signing key is refused ("public key ... is newer than
//     the signature", a time conflict); go-crypto does not compare the two;
//   - a signing key (or its primary key) created after now is refused ("key ... was
//     created ... in the future"); go-crypto refuses it as expired;
//   - a signature made after now is accepted, which go-crypto refuses as expired; pullgate
//     bounds this at maxClockSkew, where gpg sets no bound.
//
// Everything else keeps go-crypto's verdict: revocations, key and signature expiry.
func timeVerdict(key openpgp.Key, sig *packet.Signature, detailsErr error, now time.Time) error {
	switch {
	case detailsErr == nil:
	case errors.Is(detailsErr, pgperrors.ErrKeyExpired):
		// go-crypto counts a key created after now as expired.
		created := key.PublicKey.CreationTime
		if primary := key.Entity.PrimaryKey.CreationTime; primary.After(created) {
			created = primary
		}
		if created.Unix() > now.Unix() {
			return reject("the signing key was created %s after the verifier's clock (a time conflict for gpg)", created.Sub(now))
		}
		return signatureError(detailsErr)
	case errors.Is(detailsErr, pgperrors.ErrSignatureExpired):
		// go-crypto counts a signature made after now as expired, and checks signature
		// dates last: revocation and key expiry have passed. Judge the dates again,
		// with the clock skew allowance.
		if err := signatureDates(key, sig, now); err != nil {
			return err
		}
	default:
		return signatureError(detailsErr)
	}
	// gpg checks this first (sig-check.c, check_signature_metadata_validity); the
	// verdict is the same, and go-crypto's reasons above stay what they were.
	if key.PublicKey.CreationTime.Unix() > sig.CreationTime.Unix() {
		return reject("the signature was made before its signing key was created (%s before; a time conflict for gpg)",
			key.PublicKey.CreationTime.Sub(sig.CreationTime))
	}
	return nil
}

// signatureDates checks the signatures go-crypto's expiry check covers (the data
// signature, the primary key's self-signature and, for a subkey, its binding and
// cross-certification): none may have expired at now, and none may be dated more than
// maxClockSkew after now.
func signatureDates(key openpgp.Key, sig *packet.Signature, now time.Time) error {
	primarySelf, _ := key.Entity.PrimarySelfSignature()
	sigs := []*packet.Signature{sig, primarySelf}
	if key.PublicKey != key.Entity.PrimaryKey {
		sigs = append(sigs, key.SelfSignature, key.SelfSignature.EmbeddedSignature)
	}
	for _, s := range sigs {
		if s == nil { // signingRefusal keeps such keys out; never trust a missing one
			return reject("the signing key lacks a self-signature")
		}
		if ahead := time.Duration(s.CreationTime.Unix()-now.Unix()) * time.Second; ahead > maxClockSkew {
			what := "the signature"
			if s != sig {
				what = "a self-signature of the signing key"
			}
			return reject("%s was made %s after the verifier's clock, more than the %s of clock skew pullgate allows", what, ahead, maxClockSkew)
		}
		if s.SigLifetimeSecs != nil && *s.SigLifetimeSecs != 0 {
			expiry := s.CreationTime.Add(time.Duration(*s.SigLifetimeSecs) * time.Second)
			if now.Unix() > expiry.Unix() {
				return signatureError(pgperrors.ErrSignatureExpired)
			}
		}
	}
	return nil
}
