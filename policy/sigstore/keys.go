package sigstore

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

// ParsePublicKey parses the first PEM block of pemData: PUBLIC KEY (PKIX: ECDSA, RSA,
// Ed25519) or RSA PUBLIC KEY (PKCS#1). Later blocks are ignored, as in containers/image.
func ParsePublicKey(pemData []byte) (crypto.PublicKey, error) {
	key, err := cryptoutils.UnmarshalPEMToPublicKey(pemData)
	if err != nil {
		return nil, fmt.Errorf("parsing public key: %w", err)
	}
	if err := checkKeyType(key); err != nil {
		return nil, fmt.Errorf("parsing public key: %w", err)
	}
	return key, nil
}

// ParseCertificates parses every CERTIFICATE block of a PEM bundle; at least one is required.
// Blocks of other types and blocks with headers are skipped, as x509.CertPool.AppendCertsFromPEM
// (used by containers/image) skips them; a CERTIFICATE block that does not parse is an error
// (containers/image would skip it silently; a broken trust file deserves to be noticed).
func ParseCertificates(pemData []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := pemData
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" || len(block.Headers) != 0 {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("no CERTIFICATE found in the PEM data")
	}
	return certs, nil
}

// ParseRekorPublicKey parses a Rekor public key, which must be ECDSA.
func ParseRekorPublicKey(pemData []byte) (*ecdsa.PublicKey, error) {
	key, err := cryptoutils.UnmarshalPEMToPublicKey(pemData)
	if err != nil {
		return nil, fmt.Errorf("parsing Rekor public key: %w", err)
	}
	ecKey, ok := key.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("the Rekor public key is a %s key, not ECDSA", keyTypeName(key))
	}
	return ecKey, nil
}

func checkKeyType(key crypto.PublicKey) error {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if k == nil {
			return errors.New("nil ECDSA key")
		}
	case *rsa.PublicKey:
		if k == nil {
			return errors.New("nil RSA key")
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return errors.New("malformed Ed25519 key")
		}
	default:
		return fmt.Errorf("unsupported public key type %s (ECDSA, RSA and Ed25519 are supported)", keyTypeName(key))
	}
	return nil
}

func keyTypeName(key crypto.PublicKey) string {
	switch key.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA"
	case *rsa.PublicKey:
		return "RSA"
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", key)
}

// hashPolicy says which digest an ECDSA signature is computed over.
type hashPolicy int

const (
	// hashSHA256 is what containers/image uses for .sig attachments: SHA-256 for every key
	// type (cosign signs with SHA-384 for P-384 keys, which containers/image then rejects).
	hashSHA256 hashPolicy = iota
	// hashKeyDefault follows the Sigstore algorithm registry (P-256/SHA-256,
	// P-384/SHA-384, P-521/SHA-512, RSA/SHA-256), as sigstore-go and cosign v3 bundles do.
	hashKeyDefault
)

// verifiersFor returns the verifiers a signature by key may be checked with: one for
// ECDSA (ASN.1 or IEEE P1363 encoding, as sigstore's verifier accepts) and Ed25519 (pure),
// two for RSA (PKCS#1 v1.5, then PSS, which cosign produces with some KMS keys).
func verifiersFor(key crypto.PublicKey, hp hashPolicy) ([]signature.Verifier, error) {
	hash := crypto.SHA256
	if hp == hashKeyDefault {
		details, err := signature.GetDefaultAlgorithmDetails(key)
		if err != nil {
			return nil, fmt.Errorf("no Sigstore algorithm for this %s key: %w", keyTypeName(key), err)
		}
		hash = details.GetHashType()
	}
	v, err := signature.LoadVerifier(key, hash)
	if err != nil {
		return nil, fmt.Errorf("loading a verifier for a %s key: %w", keyTypeName(key), err)
	}
	out := []signature.Verifier{v}
	if rsaKey, ok := key.(*rsa.PublicKey); ok {
		pss, err := signature.LoadRSAPSSVerifier(rsaKey, hash, nil) // nil: any salt length
		if err != nil {
			return nil, fmt.Errorf("loading an RSA-PSS verifier: %w", err)
		}
		out = append(out, pss)
	}
	return out, nil
}

// verifyMessage reports whether sig is key's signature over message (hashed as hp says).
func verifyMessage(key crypto.PublicKey, hp hashPolicy, message, sig []byte) error {
	vs, err := verifiersFor(key, hp)
	if err != nil {
		return err
	}
	var firstErr error
	for _, v := range vs {
		err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(message))
		if err == nil {
			return nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// verifyDigest reports whether sig is key's signature over a precomputed SHA-256 digest.
// Ed25519 signs messages, not digests, so it cannot be checked this way.
func verifyDigest(key crypto.PublicKey, sha256Digest, sig []byte) error {
	if _, ok := key.(ed25519.PublicKey); ok {
		return errors.New("an Ed25519 signature cannot be checked against a message digest alone")
	}
	vs, err := verifiersFor(key, hashSHA256)
	if err != nil {
		return err
	}
	var firstErr error
	for _, v := range vs {
		err := v.VerifySignature(bytes.NewReader(sig), nil, options.WithDigest(sha256Digest), options.WithCryptoSignerOpts(crypto.SHA256))
		if err == nil {
			return nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// verifyWithCandidates runs check with each candidate key in order and succeeds with the
// first key that check accepts.
func verifyWithCandidates(candidates []crypto.PublicKey, check func(crypto.PublicKey) error) error {
	var errs []error
	for _, key := range candidates {
		err := check(key)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	if len(candidates) == 1 {
		return rejectf("cryptographic signature verification failed: %w", errs[0])
	}
	return rejectf("cryptographic signature verification failed with each of the %d candidate public keys", len(candidates))
}

// publicKeyDER is the PKIX DER form of key, which is what Rekor records (as PEM) for a key.
func publicKeyDER(key crypto.PublicKey) ([]byte, error) {
	der, err := cryptoutils.MarshalPublicKeyToDER(key)
	if err != nil {
		return nil, fmt.Errorf("%w: re-encoding a public key: %w", ErrInvalidTrust, err)
	}
	return der, nil
}
