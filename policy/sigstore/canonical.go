package sigstore

import (
	"errors"
	"math"
	"strconv"
)

// RFC 8785 (JSON Canonicalization Scheme) for the one shape this package signs over: the
// Rekor SET payload {"body", "integratedTime", "logID", "logIndex"}. Rekor computes the SET
// over the canonical form; containers/image and cosign re-create it with
// github.com/cyberphone/json-canonicalization. For a fixed object of two strings and two
// integers the scheme reduces to: keys sorted by UTF-16 code units, no whitespace, strings
// with only the mandatory escapes, numbers in ECMAScript form. That is small enough to write
// here rather than add a module with no go.mod.

// jsonInteger is an integer-valued JSON number, with its RFC 8785 form. It accepts what
// containers/image accepts after canonicalizing: any JSON number (1e3 included) whose
// double-precision value is integral and fits an int64. JSON strings are refused.
type jsonInteger struct {
	value     int64
	canonical string
}

func (n *jsonInteger) UnmarshalJSON(raw []byte) error {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return errors.New("expected an integer")
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return errors.New("integer out of range")
	}
	if f != math.Trunc(f) {
		return errors.New("expected an integer, got a fraction")
	}
	// float64(math.MaxInt64) rounds up to 2^63, which does not fit an int64.
	if f >= math.MaxInt64 || f < math.MinInt64 {
		return errors.New("integer out of range")
	}
	*n = newJSONInteger(int64(f)) // f is integral and in range: the conversion is exact
	return nil
}

func newJSONInteger(v int64) jsonInteger {
	return jsonInteger{value: v, canonical: canonicalNumber(float64(v))}
}

// canonicalNumber formats an integral double as ECMAScript's Number.prototype.toString
// does for magnitudes below 1e21 (always the case below 2^63): the shortest digits that
// round-trip, padded with zeros, and "0" for both zeros.
func canonicalNumber(f float64) string {
	if f == 0 {
		return "0"
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// appendCanonicalString appends s as an RFC 8785 string: only '"', '\\' and control
// characters are escaped (the short forms where JSON has them, else \u00xx in lower case);
// everything else, non-ASCII included, is copied as is.
func appendCanonicalString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			if c < 0x20 {
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			} else {
				dst = append(dst, c)
			}
		}
	}
	return append(dst, '"')
}

// canonical returns the RFC 8785 form of p. "logID" sorts before "logIndex" ('D' < 'n').
func (p *rekorPayload) canonical() []byte {
	out := make([]byte, 0, len(p.Body)+len(p.LogID)+96)
	out = append(out, `{"body":`...)
	out = appendCanonicalString(out, p.Body)
	out = append(out, `,"integratedTime":`...)
	out = append(out, p.IntegratedTime.canonical...)
	out = append(out, `,"logID":`...)
	out = appendCanonicalString(out, p.LogID)
	out = append(out, `,"logIndex":`...)
	out = append(out, p.LogIndex.canonical...)
	return append(out, '}')
}
