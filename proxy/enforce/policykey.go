package enforce

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// policyKey names, in the gate's stores, the policy p and finder f put in force as
// generation gen of the gate whose local name is local.
func policyKey(p Evaluator, f Finder, local string, gen uint64) string {
	return fmt.Sprintf("local:%s:%d", local, gen)
}

// localName is a random name for one gate, so that the keys of its policies are never
// those of another gate's, in this process or another sharing a store.
func localName() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("enforce: %w", err)
	}
	return hex.EncodeToString(b), nil
}
