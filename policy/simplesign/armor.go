package simplesign

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"

	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
)

// A signature reaches Verify in one of three forms, told apart as gpg tells them apart
// (podman's default gpgme backend hands a signature API entry to gpg as it is):
//   - binary OpenPGP, when the first byte is a packet tag (its high bit is set);
//   - otherwise the first armor BEGIN line decides: "PGP SIGNED MESSAGE" is a clearsigned
//     message, the labels gpg dearmors (messageLabels) hold a binary message, and any
//     other label is refused;
//   - text with no BEGIN line is handed on as it is, for the OpenPGP parser to refuse.
//
// Lookaside files never get here armored: ParseSignatureBlob refuses them by their first
// byte, as containers/image does.

const (
	armorBegin       = "-----BEGIN "
	armorEnd         = "-----END "
	armorDashes      = "-----"
	clearsignedLabel = "PGP SIGNED MESSAGE"
)

// messageLabels are the armor labels gpg dearmors as OpenPGP data whatever they name: a
// signed message armored as "PGP SIGNATURE" verifies with gpg, so with podman. gpg finds
// no data under any other label.
var messageLabels = map[string]bool{
	"PGP MESSAGE":           true,
	"PGP SIGNATURE":         true,
	"PGP ARMORED FILE":      true,
	"PGP PUBLIC KEY BLOCK":  true,
	"PGP PRIVATE KEY BLOCK": true,
	"PGP SECRET KEY BLOCK":  true,
}

// keyLabels are the armor labels of a key file's blocks (what go-crypto's
// ReadArmoredKeyRing and gpg --import read).
var keyLabels = map[string]bool{
	"PGP PUBLIC KEY BLOCK":  true,
	"PGP PRIVATE KEY BLOCK": true,
}

// envelope is a signature in the form Verify checks: a clearsigned block, or else a
// binary OpenPGP message (dearmored if it came armored).
type envelope struct {
	binary      []byte
	clearsigned *clearsign.Block
}

// openEnvelope tells which form untrustedSignature has and dearmors it if needed. Every
// error wraps ErrRejected.
func openEnvelope(untrustedSignature []byte) (envelope, error) {
	if len(untrustedSignature) == 0 || isPacketTag(untrustedSignature[0]) {
		return envelope{binary: untrustedSignature}, nil
	}
	label, begin, body, found := findArmor(untrustedSignature, 0)
	switch {
	case !found:
		// Neither binary nor armored: the OpenPGP parser refuses it and says why.
		return envelope{binary: untrustedSignature}, nil
	case label == clearsignedLabel:
		block, rest := clearsign.Decode(untrustedSignature[begin:])
		if block == nil {
			return envelope{}, reject("invalid clearsigned message")
		}
		// gpg refuses a clearsigned message followed by another armored block ("bad
		// data"); go-crypto would look only at the first.
		if _, _, _, more := findArmor(rest, 0); more {
			return envelope{}, reject("another armored block follows the clearsigned message")
		}
		return envelope{clearsigned: block}, nil
	case messageLabels[label]:
		// Whatever follows the block is ignored, as gpg ignores it.
		data, _, err := decodeArmor(untrustedSignature, body, maxDearmoredSignatureSize)
		if err != nil {
			return envelope{}, reject("invalid ASCII armor: %v", err)
		}
		if len(data) == 0 || !isPacketTag(data[0]) {
			return envelope{}, reject("the ASCII armor does not hold a valid OpenPGP message")
		}
		return envelope{binary: data}, nil
	}
	return envelope{}, reject("ASCII armor labelled %s, not a signed message", strconv.Quote(label))
}

// isPacketTag reports whether b can start an OpenPGP packet (RFC 4880 4.2): gpg reads
// data whose first byte has the high bit set as binary, anything else as armor.
func isPacketTag(b byte) bool { return b&0x80 != 0 }

// line returns the line of data starting at pos, without its line end and trailing
// blanks (gpg accepts CRLF and trailing spaces), and the position of the next line.
// ok is false at the end of data.
func line(data []byte, pos int) (l []byte, next int, ok bool) {
	if pos >= len(data) {
		return nil, len(data), false
	}
	rest := data[pos:]
	next = len(data)
	if n := bytes.IndexByte(rest, '\n'); n >= 0 {
		rest, next = rest[:n], pos+n+1
	}
	return bytes.TrimRight(rest, " \t\r"), next, true
}

// findArmor finds the first armor BEGIN line at or after pos: one that starts a line
// (gpg finds no armor in indented text) and reads "-----BEGIN <label>-----". begin is the
// offset of that line, body that of the line after it.
func findArmor(data []byte, pos int) (label string, begin, body int, found bool) {
	for {
		l, next, ok := line(data, pos)
		if !ok {
			return "", 0, 0, false
		}
		if len(l) > len(armorBegin)+len(armorDashes) && bytes.HasPrefix(l, []byte(armorBegin)) && bytes.HasSuffix(l, []byte(armorDashes)) {
			return string(l[len(armorBegin) : len(l)-len(armorDashes)]), pos, next, true
		}
		pos = next
	}
}

// decodeArmor decodes the armored block whose header lines start at pos (RFC 4880 6.2):
// "Key: value" headers, a blank line, base64 lines, an optional CRC-24 checksum line that
// must match, and the END line. Like gpg it takes a base64 line straight after the
// headers as the start of the data, and the end of data as the END line. The decoded
// data may not exceed max bytes. next is the offset after the block.
func decodeArmor(data []byte, pos, max int) (decoded []byte, next int, err error) {
	for headers := 0; ; headers++ {
		l, after, ok := line(data, pos)
		if !ok {
			return nil, 0, errors.New("no data after the BEGIN line")
		}
		if len(l) == 0 {
			pos = after
			break
		}
		if bytes.IndexByte(l, ':') < 0 {
			if isBase64(l) {
				break // the data starts without the blank line
			}
			return nil, 0, fmt.Errorf("invalid armor header line %s", quoteStart(l))
		}
		if headers >= maxArmorHeaderLines {
			return nil, 0, fmt.Errorf("more than %d armor header lines", maxArmorHeaderLines)
		}
		pos = after
	}
	var (
		encoded  []byte
		checksum []byte
	)
	maxEncoded := base64.StdEncoding.EncodedLen(max)
body:
	for {
		l, after, ok := line(data, pos)
		if !ok {
			break
		}
		pos = after
		switch {
		case bytes.HasPrefix(l, []byte(armorEnd)):
			if !isEndLine(l) {
				return nil, 0, fmt.Errorf("invalid armor END line %s", quoteStart(l))
			}
			break body
		case len(l) > 0 && l[0] == '=':
			if len(l) != 5 || !isBase64(l[1:]) {
				return nil, 0, fmt.Errorf("invalid armor checksum line %s", quoteStart(l))
			}
			if checksum, err = base64.StdEncoding.DecodeString(string(l[1:])); err != nil {
				return nil, 0, fmt.Errorf("invalid armor checksum: %w", err)
			}
			if l, after, ok := line(data, pos); ok && bytes.HasPrefix(l, []byte(armorEnd)) {
				if !isEndLine(l) {
					return nil, 0, fmt.Errorf("invalid armor END line %s", quoteStart(l))
				}
				pos = after
			}
			break body
		case len(l) == 0:
		case !isBase64(l):
			return nil, 0, fmt.Errorf("invalid armor line %s", quoteStart(l))
		default:
			if len(encoded)+len(l) > maxEncoded {
				return nil, 0, fmt.Errorf("the armored data is larger than %d bytes", max)
			}
			encoded = append(encoded, l...)
		}
	}
	decoded, err = base64.StdEncoding.DecodeString(string(encoded))
	if err != nil {
		return nil, 0, fmt.Errorf("invalid base64 in the armor: %w", err)
	}
	if checksum != nil {
		if got := crc24(decoded); got != uint32(checksum[0])<<16|uint32(checksum[1])<<8|uint32(checksum[2]) {
			return nil, 0, errors.New("armor checksum mismatch: the armored data is corrupt")
		}
	}
	return decoded, pos, nil
}

// isEndLine reports whether l, which starts with "-----END ", is one END line and
// nothing else: a next block's BEGIN line run into it (blocks joined without a newline)
// would otherwise be lost, as gpg loses it. The label is not compared with the BEGIN
// line's: gpg does not compare them.
func isEndLine(l []byte) bool {
	label := l[len(armorEnd):]
	return bytes.HasSuffix(label, []byte(armorDashes)) && !bytes.Contains(label[:len(label)-len(armorDashes)], []byte("-----"))
}

func isBase64(l []byte) bool {
	for _, c := range l {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '/', c == '=':
		default:
			return false
		}
	}
	return true
}

// quoteStart quotes the start of an untrusted line for an error message.
func quoteStart(l []byte) string {
	const show = 40
	if len(l) > show {
		return strconv.Quote(string(l[:show])) + "..."
	}
	return strconv.Quote(string(l))
}

// crc24 is the armor checksum of RFC 4880 6.1.
func crc24(data []byte) uint32 {
	const (
		crc24Init = 0xB704CE
		crc24Poly = 0x1864CFB
	)
	crc := uint32(crc24Init)
	for _, b := range data {
		crc ^= uint32(b) << 16
		for range 8 {
			crc <<= 1
			if crc&0x1000000 != 0 {
				crc ^= crc24Poly
			}
		}
	}
	return crc & 0xFFFFFF
}
