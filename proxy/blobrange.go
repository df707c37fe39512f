package proxy

import (
	"strconv"
	"strings"
)

// rangeKind is what parseRange decided about a Range header.
type rangeKind int

const (
	// rangeWhole: answer 200 with the whole blob. No Range, or one pullgate ignores as
	// RFC 9110 14.2 allows: another unit, several ranges, a malformed or invalid one, or
	// a blob whose size is not known.
	rangeWhole rangeKind = iota
	// rangeSingle: answer 206 with bytes first..last.
	rangeSingle
	// rangeUnsatisfiable: answer 416; no byte of the blob is in the range.
	rangeUnsatisfiable
)

// byteRange is one parsed Range header, resolved against the blob's size.
type byteRange struct {
	kind rangeKind
	// first and last are the inclusive byte positions of a rangeSingle.
	first, last int64
}

// length is the number of bytes of a rangeSingle.
func (r byteRange) length() int64 { return r.last - r.first + 1 }

// parseRange resolves a Range header (RFC 9110 14.1.2) against a blob of size bytes
// (-1: unknown). Only a single bytes range is served: "a-b", "a-" and "-n".
func parseRange(header string, size int64) byteRange {
	whole := byteRange{kind: rangeWhole}
	if header == "" || size < 0 {
		return whole
	}
	unit, spec, ok := strings.Cut(header, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return whole
	}
	spec = strings.TrimSpace(spec)
	if strings.Contains(spec, ",") {
		return whole
	}
	firstS, lastS, ok := strings.Cut(spec, "-")
	if !ok {
		return whole
	}
	firstS, lastS = strings.TrimSpace(firstS), strings.TrimSpace(lastS)
	switch {
	case firstS == "" && lastS == "":
		return whole
	case firstS == "":
		// Suffix range: the last n bytes.
		n, ok := parseRangeNumber(lastS)
		if !ok {
			return whole
		}
		if n == 0 || size == 0 {
			return byteRange{kind: rangeUnsatisfiable}
		}
		return byteRange{kind: rangeSingle, first: max(size-n, 0), last: size - 1}
	}
	first, ok := parseRangeNumber(firstS)
	if !ok {
		return whole
	}
	last := size - 1
	if lastS != "" {
		if last, ok = parseRangeNumber(lastS); !ok || last < first {
			return whole
		}
	}
	if first >= size {
		return byteRange{kind: rangeUnsatisfiable}
	}
	return byteRange{kind: rangeSingle, first: first, last: min(last, size-1)}
}

// parseRangeNumber parses the 1*DIGIT of a range position; a number too large for an
// int64 is refused (the range is then ignored).
func parseRangeNumber(s string) (int64, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
