package enforce

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Identified is implemented by an Evaluator or a Finder that names the content it was
// loaded from: equal IDs must mean equal decisions. *policy.Policy (from policy.LoadFile:
// the policy file and every key file it names) and *sigsource.Finder (its registries.d)
// implement it. "" means no ID.
type Identified interface {
	ID() string
}

// policyKey names, in the gate's stores, the policy p and finder f put in force as
// generation gen of the gate whose local name is local. When both have an ID the key is
// a digest of the two: gates loading the same files, in this process or another, share
// keys, and a reload to the same files keeps what was remembered. Otherwise the key is
// this gate's alone and each reload makes a new one, so nothing made under an earlier
// policy is ever used again.
func policyKey(p Evaluator, f Finder, local string, gen uint64) string {
	pid, fid := idOf(p), idOf(f)
	if pid == "" || fid == "" {
		return fmt.Sprintf("local:%s:%d", local, gen)
	}
	sum := sha256.New()
	for _, s := range []string{policyKeyVersion, pid, fid} {
		fmt.Fprintf(sum, "%d:%s", len(s), s)
	}
	return "sha256:" + hex.EncodeToString(sum.Sum(nil))
}

// policyKeyVersion changes every content key when what a key covers changes.
const policyKeyVersion = "pullgate gate policy key 1"

func idOf(v any) string {
	if id, ok := v.(Identified); ok {
		return id.ID()
	}
	return ""
}

// localName is a random name for one gate, so that the keys of its policies without IDs
// are never those of another gate's, in this process or another sharing a store.
func localName() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("enforce: %w", err)
	}
	return hex.EncodeToString(b), nil
}
