package policy

import (
	"strings"
	"testing"
)

// TestLoadFileID: a loaded policy's ID is a digest of the policy file and every key file
// it names: the same files give the same ID, and a change to any of them another one.
func TestLoadFileID(t *testing.T) {
	f := newFixture(t)
	text := `{"default":[{"type":"reject"}],"transports":{"docker":{"registry.test":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"$DIR/key.gpg"}]}}}`
	text = strings.ReplaceAll(text, "$DIR", f.dir)
	f.write("key.gpg", f.trusted.Public(t))
	load := func() string {
		t.Helper()
		p, err := LoadFile(f.write("policy.json", []byte(text)))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(p.ID(), "sha256:") {
			t.Fatalf("ID %q", p.ID())
		}
		return p.ID()
	}
	first := load()
	if again := load(); again != first {
		t.Fatalf("the same files give IDs %s and %s", first, again)
	}
	f.write("key.gpg", f.other.Public(t)) // same path, another key
	if other := load(); other == first {
		t.Fatal("a changed key file keeps the policy's ID")
	}
	f.write("key.gpg", f.trusted.Public(t))
	text = strings.Replace(text, `"reject"`, `"insecureAcceptAnything"`, 1)
	if other := load(); other == first {
		t.Fatal("a changed policy file keeps the policy's ID")
	}
	if id := f.policy(`{"default":[{"type":"reject"}]}`).ID(); id != "" {
		t.Fatalf("a parsed policy has ID %q", id)
	}
}
