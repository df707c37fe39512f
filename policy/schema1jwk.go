package policy

import (
	"bytes"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// joseBase64URLDecode is libtrust's base64url decoding with the padding restored.
func joseBase64URLDecode(s string) ([]byte, error) {
	switch len(s) % 4 {
	case 0:
	case 2:
		s += "=="
	case 3:
		s += "="
	default:
		return nil, errors.New("illegal base64url string")
	}
	return base64.URLEncoding.DecodeString(s)
}

// checkJWK makes the checks libtrust's UnmarshalPublicKeyJWK makes on the "jwk" of a
// schema1 signature header: a failure there makes containers/image unable to compute the
// manifest digest, which rejects the signature. The signature itself is never verified
// (containers/image does not either).
func checkJWK(data []byte) error {
	var jwk map[string]any
	if err := json.Unmarshal(data, &jwk); err != nil {
		return fmt.Errorf("decoding JWK public key JSON data: %w", err)
	}
	kty, err := jwkString(jwk, "kty")
	if err != nil {
		return fmt.Errorf("JWK public key type: %w", err)
	}
	switch kty {
	case "EC":
		return checkECJWK(jwk)
	case "RSA":
		return checkRSAJWK(jwk)
	}
	return fmt.Errorf("JWK public key type not supported: %q", kty)
}

func jwkString(m map[string]any, key string) (string, error) {
	v, ok := m[key]
	if !ok {
		return "", fmt.Errorf("%q value not specified", key)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%q value must be a string", key)
	}
	return s, nil
}

// jwkBase64URL returns the base64url-decoded string member key of a JWK; what names the
// member in the errors.
func jwkBase64URL(jwk map[string]any, key, what string) ([]byte, error) {
	s, err := jwkString(jwk, key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	b, err := joseBase64URLDecode(s)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid base64 URL encoding: %w", what, err)
	}
	return b, nil
}

func checkECJWK(jwk map[string]any) error {
	crv, err := jwkString(jwk, "crv")
	if err != nil {
		return fmt.Errorf("JWK EC public key curve identifier: %w", err)
	}
	var curve elliptic.Curve
	switch crv {
	case "P-256":
		curve = elliptic.P256()
	case "P-384":
		curve = elliptic.P384()
	case "P-521":
		curve = elliptic.P521()
	default:
		return fmt.Errorf("JWK EC public key curve identifier not supported: %q", crv)
	}
	coordinates := make([]*big.Int, 2)
	for i, name := range []string{"x", "y"} {
		b, err := jwkBase64URL(jwk, name, "JWK EC public key "+name+"-coordinate")
		if err != nil {
			return err
		}
		if want := (curve.Params().BitSize + 7) >> 3; len(b) != want {
			return fmt.Errorf("JWK EC public key %s-coordinate: invalid number of octets: got %d, should be %d", name, len(b), want)
		}
		coordinates[i] = new(big.Int).SetBytes(b)
	}
	if _, ok := jwk["kid"]; ok {
		kid, err := jwkString(jwk, "kid")
		if err != nil {
			return fmt.Errorf("JWK EC public key ID: %w", err)
		}
		h := sha256.New()
		h.Write([]byte("EC" + crv))
		h.Write(coordinates[0].Bytes())
		h.Write(coordinates[1].Bytes())
		if kid != libtrustKeyID(h.Sum(nil)[:30]) {
			return fmt.Errorf("JWK EC public key ID does not match: %s", kid)
		}
	}
	return nil
}

func checkRSAJWK(jwk map[string]any) error {
	nb, err := jwkBase64URL(jwk, "n", "JWK RSA public key modulus")
	if err != nil {
		return err
	}
	eb, err := jwkBase64URL(jwk, "e", "JWK RSA public key exponent")
	if err != nil {
		return err
	}
	if len(eb) > 4 { // libtrust would panic here
		return errors.New("JWK RSA public key exponent: too large")
	}
	e := int(binary.BigEndian.Uint32(append(make([]byte, 4-len(eb)), eb...)))
	if _, ok := jwk["kid"]; ok {
		kid, err := jwkString(jwk, "kid")
		if err != nil {
			return fmt.Errorf("JWK RSA public key ID: %w", err)
		}
		// libtrust hashes the PKIX encoding; a key that cannot be encoded has the ID "".
		want := ""
		if der, err := x509.MarshalPKIXPublicKey(&rsa.PublicKey{N: new(big.Int).SetBytes(nb), E: e}); err == nil {
			sum := sha256.Sum256(der)
			want = libtrustKeyID(sum[:30])
		}
		if kid != want {
			return fmt.Errorf("JWK RSA public key ID does not match: %s", kid)
		}
	}
	return nil
}

// libtrustKeyID formats a key ID as libtrust does: base32, in colon-separated groups of 4.
func libtrustKeyID(b []byte) string {
	s := strings.TrimRight(base32.StdEncoding.EncodeToString(b), "=")
	var buf bytes.Buffer
	i := 0
	for i = 0; i < len(s)/4-1; i++ {
		buf.WriteString(s[i*4:i*4+4] + ":")
	}
	buf.WriteString(s[i*4:])
	return buf.String()
}
