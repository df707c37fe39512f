package simplesign

import (
	"bytes"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/pullgate/pullgate/policy/payload"
)

// UntrustedPayload parses untrustedSignature as Verify does (an OpenPGP signed message
// carrying exactly one signature, binary or armored, in the one-pass or the old form, or a
// clearsigned one) and returns its payload, parsed
// strictly, WITHOUT checking the signature against any key. It tells whether a blob is
// shaped like a simple signature of some image, for deciding what to pass on (pullgate's
// signature API); nothing it returns may be trusted. Every error wraps ErrRejected.
func UntrustedPayload(untrustedSignature []byte) (payload.Untrusted, error) {
	env, err := openEnvelope(untrustedSignature)
	if err != nil {
		return payload.Untrusted{}, err
	}
	var content []byte
	if block := env.clearsigned; block != nil {
		sig, err := io.ReadAll(io.LimitReader(block.ArmoredSignature.Body, maxPayloadSize+1))
		if err != nil || len(sig) > maxPayloadSize {
			return payload.Untrusted{}, reject("unreadable clearsigned signature")
		}
		if _, err := onlySignature(sig); err != nil {
			return payload.Untrusted{}, err
		}
		content = block.Plaintext
	} else if form := leadingSignatures(env.binary); form.oldStyle > 0 {
		// The old, non one-pass form, which Verify accepts (oldstyle.go).
		if form.onePass > 0 {
			return payload.Untrusted{}, reject("the message carries %d signatures (old-style and one-pass), exactly one is required", form.oldStyle+form.onePass)
		}
		_, oldContent, err := parseOldStyle(env.binary)
		if err != nil {
			return payload.Untrusted{}, err
		}
		content = oldContent
	} else {
		limit := int64(maxPayloadSize)
		config := &packet.Config{MaxDecompressedMessageSize: &limit}
		// No keys: go-crypto then parses everything and lists the signatures as unverified.
		md, err := openpgp.ReadMessage(bytes.NewReader(env.binary), openpgp.EntityList{}, nil, config)
		if err != nil {
			return payload.Untrusted{}, reject("not a valid OpenPGP signed message: %v", err)
		}
		if md.IsEncrypted || !md.IsSigned {
			return payload.Untrusted{}, reject("not an OpenPGP signed message")
		}
		content, err = io.ReadAll(io.LimitReader(md.UnverifiedBody, maxPayloadSize+1))
		if err != nil {
			return payload.Untrusted{}, reject("reading the signed data: %v", err)
		}
		if len(content) > maxPayloadSize {
			return payload.Untrusted{}, reject("signed data larger than %d bytes", maxPayloadSize)
		}
		if md.SignatureError != nil {
			return payload.Untrusted{}, reject("invalid signature: %v", md.SignatureError)
		}
		if n := len(md.UnverifiedSignatures); n != 1 {
			return payload.Untrusted{}, reject("the message carries %d signatures, exactly one is required", n)
		}
	}
	claims, err := payload.Parse(content, payload.Options{Type: payload.TypeSimpleSigning})
	if err != nil {
		return payload.Untrusted{}, reject("%w", err)
	}
	return claims, nil
}
