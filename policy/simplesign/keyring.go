package simplesign

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
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

// ParseKeyring parses an OpenPGP keyring: binary (as `gpg --export` writes it; several
// exports may be concatenated) or ASCII-armored with any number of blocks (several
// `gpg --armor --export` outputs in one file, text around them allowed). Every key of
// every block is trusted, as gpg --import (so gpgme, podman's default backend) imports
// them all; containers/image's OpenPGP backend reads only the first block. A block or key
// that cannot be read is an error naming it, never a key silently left out (go-crypto's
// ReadKeyRing skips them). Data without any key is an error (ErrNoKeys).
func ParseKeyring(data []byte) (*Keyring, error) {
	entities, err := readKeyring(data)
	if err != nil {
		return nil, fmt.Errorf("reading OpenPGP keyring: %w", err)
	}
	k := JoinKeyrings()
	k.add(entities)
	if len(k.entities) == 0 {
		return nil, ErrNoKeys
	}
	return k, nil
}

// readKeyring reads data as armored blocks when it starts as text and holds a BEGIN
// line, else as binary packets.
func readKeyring(data []byte) (openpgp.EntityList, error) {
	if len(data) == 0 || isPacketTag(data[0]) {
		return readKeys(data)
	}
	var entities openpgp.EntityList
	pos := 0
	for n := 1; ; n++ {
		label, _, body, found := findArmor(data, pos)
		if !found {
			if n == 1 {
				// Text without armor: the binary parser says why it is not a keyring.
				return readKeys(data)
			}
			return entities, nil
		}
		if !keyLabels[label] {
			return nil, fmt.Errorf("armored block %d is labelled %s, not a key block", n, strconv.Quote(label))
		}
		decoded, next, err := decodeArmor(data, body, len(data))
		if err != nil {
			return nil, fmt.Errorf("armored block %d: %w", n, err)
		}
		keys, err := readKeys(decoded)
		if err != nil {
			return nil, fmt.Errorf("armored block %d: %w", n, err)
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("armored block %d holds no key", n)
		}
		entities = append(entities, keys...)
		pos = next
	}
}

// readKeys reads every key (entity) of a binary keyring. Unlike openpgp.ReadKeyRing,
// which skips keys it cannot read, any such key is an error.
func readKeys(data []byte) (openpgp.EntityList, error) {
	packets := packet.NewReader(bytes.NewReader(data))
	var entities openpgp.EntityList
	for n := 1; ; n++ {
		e, err := openpgp.ReadEntity(packets)
		if err == io.EOF {
			return entities, nil
		}
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", n, err)
		}
		entities = append(entities, e)
	}
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
