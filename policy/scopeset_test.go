package policy

import (
	"testing"

	"github.com/distribution/reference"
)

func TestScopeSet(t *testing.T) {
	set, err := NewScopeSet([]string{"docker.io/library", "quay.io/team/app:v1", "*.example.com", "127.0.0.1:5001"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		image, want string
		ok          bool
	}{
		{"docker.io/library/alpine:3.20", "docker.io/library", true},
		{"docker.io/other/alpine:3.20", "", false},
		{"quay.io/team/app:v1", "quay.io/team/app:v1", true},
		{"quay.io/team/app:v2", "", false},
		{"registry.example.com/a/b:v1", "*.example.com", true},
		{"example.com/a:v1", "", false},
		{"127.0.0.1:5001/x/y:v1", "127.0.0.1:5001", true},
		{"127.0.0.1:5002/x/y:v1", "", false},
	} {
		named, err := reference.ParseNamed(c.image)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := set.Match(named)
		if got != c.want || ok != c.ok {
			t.Errorf("Match(%s) = %q %v, want %q %v", c.image, got, ok, c.want, c.ok)
		}
	}
}

func TestValidateWarnScope(t *testing.T) {
	for _, c := range []struct {
		scope string
		ok    bool
	}{
		{"docker.io", true}, {"docker.io/library", true}, {"docker.io/library/alpine:3.20", true},
		{"localhost:5000/a", true}, {"*.example.com", true},
		{"docker.io/library/alpine@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true},
		{"", false}, {" docker.io", false}, {"library/alpine", false}, {"alpine", false},
		{"Docker.io/x", false}, {"*.", false}, {"*.a/b", false}, {"docker.io/Library", false},
	} {
		if err := ValidateWarnScope(c.scope); (err == nil) != c.ok {
			t.Errorf("ValidateWarnScope(%q) = %v, want ok %v", c.scope, err, c.ok)
		}
	}
}
