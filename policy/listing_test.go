package policy

import (
	"testing"

	"github.com/distribution/reference"
)

func TestRejectsRepository(t *testing.T) {
	p, err := Parse([]byte(`{
  "default": [{"type": "insecureAcceptAnything"}],
  "transports": {"docker": {
    "example.test/rejected": [{"type": "reject"}],
    "example.test/both": [{"type": "insecureAcceptAnything"}, {"type": "reject"}],
    "example.test/mixed": [{"type": "reject"}],
    "example.test/mixed:good": [{"type": "insecureAcceptAnything"}],
    "example.test/tagonly:bad": [{"type": "reject"}],
    "example.test/closed": [{"type": "reject"}],
    "example.test/closed:also": [{"type": "reject"}],
    "example.test/ns": [{"type": "reject"}],
    "example.test/ns/open": [{"type": "insecureAcceptAnything"}],
    "*.reject.test": [{"type": "reject"}]
  }}
}`), "policy.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		wantScope string
		want      bool
	}{
		{"example.test/rejected", `transports.docker["example.test/rejected"]`, true},
		{"example.test/rejected:v1", `transports.docker["example.test/rejected"]`, true}, // the tag is dropped
		{"example.test/both", `transports.docker["example.test/both"]`, true},
		{"example.test/mixed", `transports.docker["example.test/mixed:good"]`, false},
		{"example.test/tagonly", "default", false},
		{"example.test/closed", `transports.docker["example.test/closed"]`, true},
		{"example.test/ns/sub", `transports.docker["example.test/ns"]`, true},
		{"example.test/ns/open", `transports.docker["example.test/ns/open"]`, false},
		{"registry.reject.test/app", `transports.docker["*.reject.test"]`, true},
		{"example.test/other", "default", false},
	}
	for _, tt := range tests {
		named, err := reference.ParseNormalizedNamed(tt.name)
		if err != nil {
			t.Fatal(err)
		}
		scope, got := p.RejectsRepository(named)
		if got != tt.want || scope != tt.wantScope {
			t.Errorf("RejectsRepository(%s) = %q, %v; want %q, %v", tt.name, scope, got, tt.wantScope, tt.want)
		}
	}
}
