package upstream

import (
	"strings"
	"testing"
)

func TestBearerRealm(t *testing.T) {
	tests := []struct {
		challenge, realm string
		ok               bool
	}{
		{`Bearer realm="https://auth.example/token",service="registry.example"`, "https://auth.example/token", true},
		{`bearer service="s", realm="https://quay.example/v2/auth"`, "https://quay.example/v2/auth", true},
		{`Bearer realm=https://auth.example/token,service=s`, "https://auth.example/token", true},
		{`Bearer service="s",scope="repository:a:pull"`, "", false},
		{`Bearer realm=""`, "", false},
		{`Basic realm="https://auth.example/"`, "", false},
		{`Bearer`, "", false},
		{``, "", false},
	}
	for _, tt := range tests {
		realm, ok := bearerRealm(tt.challenge)
		if realm != tt.realm || ok != tt.ok {
			t.Errorf("bearerRealm(%q) = %q, %v; want %q, %v", tt.challenge, realm, ok, tt.realm, tt.ok)
		}
	}
}

func FuzzBearerRealm(f *testing.F) {
	f.Add(`Bearer realm="https://auth.example/token",service="registry.example"`)
	f.Add(`Bearer a=b,,realm=x`)
	f.Fuzz(func(t *testing.T, challenge string) {
		if realm, ok := bearerRealm(challenge); ok && !strings.Contains(challenge, realm) {
			t.Fatalf("realm %q is not in %q", realm, challenge)
		}
	})
}
