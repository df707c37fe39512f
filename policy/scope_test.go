package policy

import (
	"context"
	"strings"
	"testing"
)

// scopePolicy builds a policy whose docker scopes all reject, so that only the selected
// scope's name matters.
func scopePolicy(t *testing.T, scopes ...string) *Policy {
	t.Helper()
	var b strings.Builder
	b.WriteString(`{"default":[{"type":"reject"}],"transports":{"docker":{`)
	for i, s := range scopes {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"` + s + `":[{"type":"reject"}]`)
	}
	b.WriteString(`}}}`)
	p, err := Parse([]byte(b.String()), "scopes.json")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func scopeName(s string) string {
	if s == "default" {
		return s
	}
	return `transports.docker["` + s + `"]`
}

// TestScopeSpecVectors covers SPEC 10.2 #13-#17 and the naming rules of SPEC 1.3.
func TestScopeSpecVectors(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	levels := []string{"docker.io/library/busybox:latest", "docker.io/library/busybox", "docker.io/library", "docker.io", "*.io", ""}
	tests := []struct {
		name   string
		scopes []string
		image  string
		want   string // scope key, or "default"
	}{
		// 13: each level in turn
		{"identity", levels, "busybox:latest", "docker.io/library/busybox:latest"},
		{"implicit latest", levels, "busybox", "docker.io/library/busybox:latest"},
		{"repository", levels, "busybox:1", "docker.io/library/busybox"},
		{"namespace", levels, "docker.io/library/alpine:1", "docker.io/library"},
		{"host", levels, "docker.io/user/app:1", "docker.io"},
		{"wildcard", levels, "quay.io/x/y:1", "*.io"},
		{"transport default", levels, "localhost:5000/x:1", ""},
		{"global default", levels[:5], "localhost:5000/x:1", "default"},
		{"index.docker.io is docker.io", levels, "index.docker.io/library/busybox:1", "docker.io/library/busybox"},
		// 14: ports
		{"host without port does not match host:port", []string{"example.com"}, "example.com:5000/app:1", "default"},
		{"host:port", []string{"example.com", "example.com:5000"}, "example.com:5000/app:1", "example.com:5000"},
		{"port does not prefix-match", []string{"example.com:50"}, "example.com:5000/app:1", "default"},
		// 15: wildcards
		{"wildcard one level", []string{"*.example.com"}, "a.example.com/x:1", "*.example.com"},
		{"wildcard ignores port, any depth", []string{"*.example.com"}, "a.b.example.com:443/x:1", "*.example.com"},
		{"wildcard does not match the domain itself", []string{"*.example.com"}, "example.com/x:1", "default"},
		{"most specific wildcard", []string{"*.example.com", "*.b.example.com"}, "a.b.example.com/x:1", "*.b.example.com"},
		{"less specific wildcard", []string{"*.example.com", "*.b.example.com"}, "b.example.com/x:1", "*.example.com"},
		{"namespace beats wildcard", []string{"*.example.com", "a.example.com"}, "a.example.com/x:1", "a.example.com"},
		{"IP host wildcards", []string{"*.0.5"}, "10.0.0.5:5000/x:1", "*.0.5"},
		{"dotless host has no wildcard", []string{"*.localhost", "*."}, "localhost/x:1", "default"},
		{"wildcard of a bare TLD", []string{"*.io"}, "docker.io/library/busybox:1", "*.io"},
		// 16: scopes are raw strings compared with normalised names
		{"short scope never matches", []string{"docker.io/busybox", "busybox"}, "busybox:1", "default"},
		{"library namespace", []string{"docker.io/library/busybox"}, "busybox:1", "docker.io/library/busybox"},
		// 17: digest scopes
		{"digest scope for digest pull", []string{"docker.io/library/busybox@" + d, "docker.io"}, "busybox@" + d, "docker.io/library/busybox@" + d},
		{"digest scope not for tag pull", []string{"docker.io/library/busybox@" + d, "docker.io"}, "busybox:1", "docker.io"},
		{"tag scope not for digest pull", []string{"docker.io/library/busybox:latest", "docker.io"}, "busybox@" + d, "docker.io"},
		// the empty scope is only the transport default
		{"empty scope is the fallback", []string{"", "quay.io"}, "quay.io/a/b:1", "quay.io"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := scopePolicy(t, tt.scopes...)
			if got, want := p.Scope(mustRef(t, tt.image)), scopeName(tt.want); got != want {
				t.Fatalf("Scope(%s) = %s, want %s", tt.image, got, want)
			}
		})
	}
}

func TestScopeWithoutDockerTransport(t *testing.T) {
	// 10.1 #10: an unknown transport parses and never applies to docker images.
	p, err := Parse([]byte(`{"default":[{"type":"reject"}],"transports":{"dokcer":{"docker.io":[{"type":"insecureAcceptAnything"}]}}}`), "p.json")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Scope(mustRef(t, "busybox:1")); got != "default" {
		t.Fatalf("Scope = %s", got)
	}
	f := newFixture(t)
	v, err := p.Evaluate(context.Background(), f.image("busybox:1"), sigSource())
	if err != nil || v.Accepted {
		t.Fatalf("Evaluate = %+v, %v; want a denial", v, err)
	}
}

// TestMostSpecificWinsWithoutMerging is SPEC 10.2 #18.
func TestMostSpecificWinsWithoutMerging(t *testing.T) {
	f := newFixture(t)
	p := f.policy(`{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{
		"docker.io":[{"type":"reject"}],
		"docker.io/library/busybox":[{"type":"insecureAcceptAnything"}]}}}`)
	for image, want := range map[string]bool{"busybox:1": true, "alpine:1": false, "quay.io/a/b:1": true} {
		v, err := p.Evaluate(context.Background(), f.image(image), sigSource())
		if err != nil {
			t.Fatal(err)
		}
		if v.Accepted != want {
			t.Errorf("%s: accepted = %v, want %v (%+v)", image, v.Accepted, want, v)
		}
	}
}

func TestNeedsSignatures(t *testing.T) {
	f := newFixture(t)
	p := f.policy(`{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{
		"signed.example":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"$DIR/trusted.gpg"}],
		"after-accept.example":[{"type":"insecureAcceptAnything"},{"type":"signedBy","keyType":"GPGKeys","keyPath":"$DIR/trusted.gpg"}],
		"rejected.example":[{"type":"reject"},{"type":"signedBy","keyType":"GPGKeys","keyPath":"$DIR/trusted.gpg"}],
		"baselayer.example":[{"type":"signedBaseLayer","baseLayerIdentity":{"type":"matchExact"}}]}}}`)
	for image, want := range map[string]bool{
		"signed.example/a:1":       true,
		"after-accept.example/a:1": true,
		"rejected.example/a:1":     false,
		"baselayer.example/a:1":    false,
		"other.example/a:1":        false,
	} {
		if got := p.NeedsSignatures(mustRef(t, image)); got != want {
			t.Errorf("NeedsSignatures(%s) = %v, want %v", image, got, want)
		}
		// Evaluate agrees: it reads signatures only when NeedsSignatures says so.
		src := sigSource()
		if _, err := p.Evaluate(context.Background(), f.image(image), src); err != nil {
			t.Fatal(err)
		}
		if fetched := src.calls.Load() != 0; fetched != want {
			t.Errorf("%s: signatures fetched = %v, want %v", image, fetched, want)
		}
	}
}
