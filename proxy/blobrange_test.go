package proxy

import (
	"strings"
	"testing"
)

func TestParseRange(t *testing.T) {
	whole := byteRange{kind: rangeWhole}
	none := byteRange{kind: rangeUnsatisfiable}
	one := func(a, b int64) byteRange { return byteRange{kind: rangeSingle, first: a, last: b} }
	tests := []struct {
		header string
		size   int64
		want   byteRange
	}{
		{"", 100, whole},
		{"bytes=0-9", 100, one(0, 9)},
		{"bytes=10-19", 100, one(10, 19)},
		{"bytes=90-", 100, one(90, 99)},
		{"bytes=90-1000", 100, one(90, 99)},
		{"bytes=-10", 100, one(90, 99)},
		{"bytes=-1000", 100, one(0, 99)},
		{"bytes=99-99", 100, one(99, 99)},
		{"BYTES = 1-2", 100, one(1, 2)},
		{"bytes=100-", 100, none},
		{"bytes=100-200", 100, none},
		{"bytes=-0", 100, none},
		{"bytes=0-", 0, none},
		{"bytes=-5", 0, none},
		{"bytes=0-9", -1, whole}, // size unknown
		{"bytes=0-1,5-6", 100, whole},
		{"bytes=0-1,", 100, whole},
		{"bytes=5-1", 100, whole},
		{"bytes=-", 100, whole},
		{"bytes=a-b", 100, whole},
		{"bytes=+1-2", 100, whole},
		{"bytes=1--2", 100, whole},
		{"bytes=0x10-", 100, whole},
		{"bytes=99999999999999999999-", 100, whole},
		{"bytes=0-99999999999999999999", 100, whole},
		{"items=0-9", 100, whole},
		{"bytes", 100, whole},
		{"bytes 0-9", 100, whole},
	}
	for _, tt := range tests {
		if got := parseRange(tt.header, tt.size); got != tt.want {
			t.Errorf("parseRange(%q, %d) = %+v, want %+v", tt.header, tt.size, got, tt.want)
		}
	}
}

// FuzzParseRange: whatever the header, a single range lies inside the blob and is not
// empty, and a blob of unknown size is always served whole.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=-5", "bytes=5-", "bytes=1-0", "bytes=0-1,2-3", "bytes=-0", "bytes= 3 - 4 "} {
		f.Add(s, int64(10))
	}
	f.Fuzz(func(t *testing.T, header string, size int64) {
		got := parseRange(header, size)
		switch got.kind {
		case rangeSingle:
			if size < 0 || got.first < 0 || got.last < got.first || got.last >= size || got.length() < 1 {
				t.Fatalf("parseRange(%q, %d) = %+v: outside the blob", header, size, got)
			}
			if !strings.Contains(strings.ToLower(header), "bytes") {
				t.Fatalf("parseRange(%q) served a range without the bytes unit", header)
			}
		case rangeUnsatisfiable:
			if size < 0 {
				t.Fatalf("parseRange(%q, %d): unsatisfiable with an unknown size", header, size)
			}
		case rangeWhole:
		default:
			t.Fatalf("unknown kind %d", got.kind)
		}
	})
}
