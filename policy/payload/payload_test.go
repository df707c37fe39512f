package payload

import (
	"errors"
	"strings"
	"testing"
)

const goodDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParse(t *testing.T) {
	simple := Options{Type: TypeSimpleSigning}
	cosign := Options{Type: TypeCosign, AllowNullOptional: true}
	crit := func(typ, dgst, ref string) string {
		return `"critical":{"type":"` + typ + `","image":{"docker-manifest-digest":"` + dgst + `"},"identity":{"docker-reference":"` + ref + `"}}`
	}
	ok := crit(TypeSimpleSigning, goodDigest, "example.com/ns/app:1")
	tests := []struct {
		name    string
		opts    Options
		data    string
		wantErr string // substring; empty means success
	}{
		{"valid", simple, `{` + ok + `,"optional":{"creator":"atomic 5","timestamp":1700000000}}`, ""},
		{"unknown optional key ignored", simple, `{` + ok + `,"optional":{"x":{"y":1}}}`, ""},
		{"optional null refused for simple signing", simple, `{` + ok + `,"optional":null}`, "optional: must be an object"},
		{"optional null allowed for cosign", cosign, `{` + crit(TypeCosign, goodDigest, "index.docker.io/library/busybox") + `,"optional":null}`, ""},
		{"missing optional", simple, `{` + ok + `}`, `missing required key "optional"`},
		{"extra top-level key", simple, `{` + ok + `,"optional":{},"x":1}`, "unknown key"},
		{"duplicate critical", simple, `{` + ok + `,` + ok + `,"optional":{}}`, "duplicate key"},
		{"extra key in critical", simple, `{"critical":{"type":"` + TypeSimpleSigning + `","image":{"docker-manifest-digest":"` + goodDigest + `"},"identity":{"docker-reference":"a/b:1"},"x":1},"optional":{}}`, "critical.x: unknown key"},
		{"extra key in image", simple, `{"critical":{"type":"` + TypeSimpleSigning + `","image":{"docker-manifest-digest":"` + goodDigest + `","x":1},"identity":{"docker-reference":"a/b:1"}},"optional":{}}`, "critical.image.x: unknown key"},
		{"case mismatch", simple, `{"critical":{"type":"` + TypeSimpleSigning + `","image":{"Docker-manifest-digest":"` + goodDigest + `"},"identity":{"docker-reference":"a/b:1"}},"optional":{}}`, "unknown key"},
		{"wrong type", simple, `{` + crit(TypeCosign, goodDigest, "a/b:1") + `,"optional":{}}`, "unexpected type"},
		{"fractional timestamp", simple, `{` + ok + `,"optional":{"timestamp":1.5}}`, "optional.timestamp"},
		{"creator not a string", simple, `{` + ok + `,"optional":{"creator":1}}`, "optional.creator"},
		// containers/image decodes optional members with encoding/json: null keeps the zero
		// value and the timestamp is a float64 that must be integral.
		{"creator null", simple, `{` + ok + `,"optional":{"creator":null}}`, ""},
		{"timestamp null", simple, `{` + ok + `,"optional":{"timestamp":null}}`, ""},
		{"timestamp in exponent form", simple, `{` + ok + `,"optional":{"timestamp":1.7e9}}`, ""},
		{"timestamp written with a fraction of zero", simple, `{` + ok + `,"optional":{"timestamp":1700000000.0}}`, ""},
		{"timestamp not a number", simple, `{` + ok + `,"optional":{"timestamp":"1"}}`, "optional.timestamp"},
		{"bad digest", simple, `{` + crit(TypeSimpleSigning, "sha256:abc", "a/b:1") + `,"optional":{}}`, "docker-manifest-digest"},
		{"uppercase digest", simple, `{` + crit(TypeSimpleSigning, strings.ToUpper(goodDigest[7:]), "a/b:1") + `,"optional":{}}`, "docker-manifest-digest"},
		{"trailing data", simple, `{` + ok + `,"optional":{}} x`, "after the JSON object"},
		{"not an object", simple, `[]`, "expected a JSON object"},
		{"reference null", simple, `{"critical":{"type":"` + TypeSimpleSigning + `","image":{"docker-manifest-digest":"` + goodDigest + `"},"identity":{"docker-reference":null}},"optional":{}}`, "null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.data), tt.opts)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if got.ManifestDigest.String() != goodDigest {
					t.Errorf("digest = %s", got.ManifestDigest)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse error = %v, want one containing %q wrapping ErrInvalid", err, tt.wantErr)
			}
		})
	}
}

func TestParseKeepsOptionalFields(t *testing.T) {
	got, err := Parse([]byte(`{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"`+goodDigest+`"},"identity":{"docker-reference":"a.example/b:1"}},"optional":{"creator":"skopeo","timestamp":42}}`), Options{Type: TypeSimpleSigning})
	if err != nil {
		t.Fatal(err)
	}
	if got.DockerReference != "a.example/b:1" || got.Creator != "skopeo" || got.Timestamp == nil || *got.Timestamp != 42 {
		t.Fatalf("got %+v", got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"` + goodDigest + `"},"identity":{"docker-reference":"a/b:1"}},"optional":{}}`))
	f.Add([]byte(`{"critical":{},"critical":{}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, o := range []Options{{Type: TypeSimpleSigning}, {Type: TypeCosign, AllowNullOptional: true}} {
			got, err := Parse(data, o)
			if err == nil && got.ManifestDigest.Validate() != nil {
				t.Fatalf("accepted an invalid digest %q", got.ManifestDigest)
			}
		}
	})
}
