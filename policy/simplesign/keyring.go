package simplesign

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// ErrNoKeys is returned by ParseKeyring for data that holds no usable public key.
var ErrNoKeys = errors.New("no OpenPGP public keys found")

// Keyring is a set of trusted OpenPGP public keys. Every primary key in it is trusted;
// subkeys are trusted through their primary key. A Keyring is immutable and safe for
// concurrent use.
type Keyring struct {
	entities     openpgp.EntityList
	fingerprints []string
}

// ParseKeyring parses an OpenPGP keyring, binary (as `gpg --export` writes it) or
// ASCII-armored. Like containers/image, the binary form is tried first and, if that fails,
// the armored form; the error reported is the binary parser's. Data without any usable
// key is an error (ErrNoKeys).
func ParseKeyring(data []byte) (*Keyring, error) {
	entities, err := openpgp.ReadKeyRing(bytes.NewReader(data))
	if err != nil {
		armored, armorErr := openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
		if armorErr != nil {
			return nil, fmt.Errorf("reading OpenPGP keyring: %w", err)
		}
		entities = armored
	}
	k := JoinKeyrings()
	k.add(entities)
	if len(k.entities) == 0 {
		return nil, ErrNoKeys
	}
	return k, nil
}

// JoinKeyrings returns a keyring trusting every key of rings. With no arguments it
// returns an empty keyring, which verifies nothing.
func JoinKeyrings(rings ...*Keyring) *Keyring {
	k := &Keyring{}
	for _, r := range rings {
		k.add(r.entities)
	}
	return k
}

func (k *Keyring) add(entities openpgp.EntityList) {
	for _, e := range entities {
		if e.PrimaryKey == nil { // ReadEntity never returns such an entity; be safe anyway
			continue
		}
		k.entities = append(k.entities, e)
		k.fingerprints = append(k.fingerprints, fingerprint(e.PrimaryKey.Fingerprint))
	}
}

// Fingerprints returns the uppercase hex fingerprints of the trusted primary keys, in
// keyring order (the key identities containers/image and gpg use).
func (k *Keyring) Fingerprints() []string {
	return append([]string(nil), k.fingerprints...)
}

// Len returns the number of trusted primary keys.
func (k *Keyring) Len() int { return len(k.entities) }

func fingerprint(fp []byte) string {
	return strings.ToUpper(fmt.Sprintf("%x", fp))
}
