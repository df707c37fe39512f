package simplesign

import (
	"bytes"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// The old, non one-pass form of a signed message (RFC 4880 11.3; what PGP 2 wrote, and
// what concatenating `gpg --detach-sign` and `gpg --store` output gives): the signature
// packet comes first and the literal data after it, with no one-pass signature packet.
// gpg verifies it ("old style (PGP 2.x) signature"); go-crypto's ReadMessage skips the
// signature packet and calls the message unsigned. pullgate parses this form itself and
// verifies the signature as a detached one over the literal data, which is what it
// signs.

// maxLeadingPackets bounds the packets leadingSignatures reads before the literal data.
// A signed message has at most three there (compressed data, a one-pass or an old-style
// signature, and nothing else); more means it is refused anyway.
const maxLeadingPackets = 16

// leadingForm counts the signature packets before a message's literal data: old-style
// ones (signature packets) and one-pass announcements.
type leadingForm struct {
	oldStyle, onePass int
}

// leadingSignatures reads a message up to its literal data and counts the signatures
// announced before it. It decides nothing about a message it cannot read: go-crypto's
// parser then gives the reason.
func leadingSignatures(untrustedSignature []byte) leadingForm {
	var form leadingForm
	packets := packet.NewReader(bytes.NewReader(untrustedSignature))
	for range maxLeadingPackets {
		p, err := packets.NextWithUnsupported()
		if err != nil {
			return form
		}
		switch p := p.(type) {
		case *packet.Compressed:
			if packets.Push(p.LimitedBodyReader(payloadLimit())) != nil {
				return form
			}
		case *packet.OnePassSignature:
			form.onePass++
		case *packet.Signature:
			form.oldStyle++
		case *packet.UnsupportedPacket:
			switch p.IncompletePacket.(type) {
			case *packet.Signature:
				form.oldStyle++
			case *packet.OnePassSignature:
				form.onePass++
			}
		case *packet.LiteralData, *packet.SymmetricallyEncrypted, *packet.AEADEncrypted:
			// The data (or what hides it) starts: the rest is its body, not packets.
			return form
		}
		// Other packets are read whole; go-crypto skips them as well.
	}
	return form
}

// parseOldStyle parses an old-style signed message: optional compressed-data packets
// around exactly one signature packet immediately followed by a literal data packet, and
// nothing after it. gpg refuses the other arrangements (a signature before compressed
// data holding the literal data: "no signed data"; an old-style signature before a
// one-pass one: "ambiguous signature data"). It returns the untrusted signature and
// literal data; every error is a rejection.
func parseOldStyle(untrustedSignature []byte) (*packet.Signature, []byte, error) {
	packets := packet.NewReader(bytes.NewReader(untrustedSignature))
	var (
		sig     *packet.Signature
		content []byte
		literal bool
		seen    int // signature packets
	)
	for {
		p, err := packets.NextWithUnsupported()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, reject("not a valid OpenPGP signed message: %v", err)
		}
		if literal {
			return nil, nil, reject("old-style signed message: a %s after the literal data", packetName(p))
		}
		switch p := p.(type) {
		case *packet.Compressed:
			if seen > 0 {
				return nil, nil, reject("old-style signed message: compressed data after the signature (gpg finds no signed data)")
			}
			if err := packets.Push(p.LimitedBodyReader(payloadLimit())); err != nil {
				return nil, nil, reject("not a valid OpenPGP signed message: %v", err)
			}
		case *packet.Signature:
			if seen++; seen > 1 {
				return nil, nil, reject("the message carries %d signatures, exactly one is required", seen)
			}
			sig = p
		case *packet.UnsupportedPacket:
			if weak := unsupportedDigest(p); weak != nil {
				return nil, nil, weak
			}
			return nil, nil, reject("not a valid OpenPGP signed message: %v", p.Error)
		case *packet.LiteralData:
			if seen == 0 {
				return nil, nil, reject("the message is not signed")
			}
			body, err := io.ReadAll(io.LimitReader(p.Body, maxPayloadSize+1))
			if err != nil {
				return nil, nil, reject("reading the signed data: %v", err)
			}
			if len(body) > maxPayloadSize {
				return nil, nil, reject("signed data larger than %d bytes", maxPayloadSize)
			}
			content, literal = body, true
		default:
			return nil, nil, reject("old-style signed message: unexpected %s", packetName(p))
		}
	}
	if sig == nil {
		return nil, nil, reject("the message is not signed")
	}
	if !literal {
		return nil, nil, reject("old-style signed message: no literal data after the signature")
	}
	return sig, content, nil
}

// payloadLimit is maxPayloadSize as go-crypto's decompression limit.
func payloadLimit() *int64 {
	limit := int64(maxPayloadSize)
	return &limit
}

// packetName names a packet's kind for a reason.
func packetName(p packet.Packet) string {
	switch p.(type) {
	case *packet.Signature:
		return "signature packet"
	case *packet.OnePassSignature:
		return "one-pass signature packet"
	case *packet.LiteralData:
		return "literal data packet"
	case *packet.Compressed:
		return "compressed data packet"
	}
	return "packet of another kind"
}
