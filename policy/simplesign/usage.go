package simplesign

import (
	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// signingKeys is a keyring that tells which keys may make data signatures as gpg does,
// for go-crypto's verifiers. go-crypto's own filter drops every key whose self-signature
// has no key-flags subpacket; gpg (and so podman's default gpgme backend) takes the usage
// of such a key from its algorithm instead (getkey.c, merge_selfsigs_main and
// merge_selfsigs_subkey), so a flagless Ed25519, ECDSA, DSA or RSA key can sign. Keys
// with flags keep go-crypto's reading: they sign only if the flags say so, as in gpg
// ("Wrong key usage").
type signingKeys openpgp.EntityList

var _ openpgp.KeyRing = signingKeys(nil)

// KeysById returns every key with that key ID, whatever its usage.
func (s signingKeys) KeysById(id uint64) []openpgp.Key {
	return openpgp.EntityList(s).KeysById(id)
}

// KeysByIdUsage returns the keys with that key ID that have the usage; for signing it
// follows gpg (see signingRefusal), for any other usage go-crypto.
func (s signingKeys) KeysByIdUsage(id uint64, usage byte) []openpgp.Key {
	if usage != packet.KeyFlagSign {
		return openpgp.EntityList(s).KeysByIdUsage(id, usage)
	}
	var keys []openpgp.Key
	for _, key := range s.KeysById(id) {
		if signingRefusal(key) == "" {
			keys = append(keys, key)
		}
	}
	return keys
}

// DecryptionKeys returns what go-crypto would: the keyring holds public keys only, so
// nothing, and encrypted messages stay unreadable.
func (s signingKeys) DecryptionKeys() []openpgp.Key {
	return openpgp.EntityList(s).DecryptionKeys()
}

// signingRefusal says why key may not make data signatures, or "" if it may.
func signingRefusal(key openpgp.Key) string {
	self := key.SelfSignature
	if primarySelf, _ := key.Entity.PrimarySelfSignature(); self == nil || primarySelf == nil {
		// go-crypto's checks need both self-signatures (and drop such keys as well).
		return "it has no valid self-signature"
	}
	if !key.PublicKey.CanSign() {
		return "its algorithm cannot sign"
	}
	if self.FlagsValid {
		if !self.FlagSign {
			return "its key flags do not allow signing"
		}
		return "" // go-crypto verified the cross-certification of a flagged subkey on reading
	}
	// No key-flags subpacket: the algorithm can sign, so gpg lets the key sign. A subkey
	// must still be cross-certified, as gpg requires of every signing subkey ("signing
	// subkey ... is not cross-certified"); go-crypto checks that only for flagged ones.
	if key.PublicKey != key.Entity.PrimaryKey && !crossCertified(key) {
		return "it is a subkey that is not cross-certified by an embedded primary-key binding signature"
	}
	return ""
}

// crossCertified reports whether the subkey's binding signature embeds a valid
// primary-key binding signature made by the subkey (RFC 4880 5.2.1, 0x19), computed as
// go-crypto computes it for flagged signing subkeys: over the primary key, then the
// subkey.
func crossCertified(key openpgp.Key) bool {
	back := key.SelfSignature.EmbeddedSignature
	if back == nil || back.SigType != packet.SigTypePrimaryKeyBinding {
		return false
	}
	h, err := back.PrepareVerify()
	if err != nil {
		return false
	}
	if key.Entity.PrimaryKey.SerializeForHash(h) != nil || key.PublicKey.SerializeForHash(h) != nil {
		return false
	}
	return key.PublicKey.VerifySignature(h, back) == nil
}

// unusableKey is the rejection of a signature whose issuer keys cannot sign: why, when
// the keyring holds a key with that ID; an UnknownKeyError when it does not.
func unusableKey(keys signingKeys, keyID uint64) error {
	for _, key := range keys.KeysById(keyID) {
		if why := signingRefusal(key); why != "" {
			return reject("signed by key ID %016X, which may not sign: %s", keyID, why)
		}
	}
	return &UnknownKeyError{KeyID: keyID}
}

// signerKey finds the key of signer that issued a signature go-crypto verified as a
// detached one (it returns the entity, not the key).
func signerKey(keys signingKeys, keyID uint64, signer *openpgp.Entity) (openpgp.Key, error) {
	for _, key := range keys.KeysByIdUsage(keyID, packet.KeyFlagSign) {
		if key.Entity == signer {
			return key, nil
		}
	}
	return openpgp.Key{}, reject("no key %016X of the signer verifies the signature", keyID)
}
