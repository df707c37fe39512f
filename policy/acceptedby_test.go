package policy

import (
	"context"
	"testing"
)

// TestEvaluateNamesAcceptingRequirements: an accepted verdict names every requirement of
// the applied list (all of them accepted), and a rejected one none.
func TestEvaluateNamesAcceptingRequirements(t *testing.T) {
	f := newFixture(t)
	byTrusted := f.sig(f.trusted.Primary(), f.digest, "busybox:1")
	byOther := f.sig(f.other.Primary(), f.digest, "busybox:1")
	tests := []struct {
		policy string
		want   string
	}{
		{`{"default":[{"type":"insecureAcceptAnything"}]}`, "[0] insecureAcceptAnything"},
		{signedByTrusted, "[0] signedBy"},
		{`{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"$DIR/trusted.gpg"},{"type":"signedBy","keyType":"GPGKeys","keyPath":"$DIR/other.gpg"}]}`, "[0] signedBy, [1] signedBy"},
		{`{"default":[{"type":"reject"}]}`, ""},
	}
	for _, tt := range tests {
		v, err := f.policy(tt.policy).Evaluate(context.Background(), f.image("busybox:1"), sigSource(byTrusted, byOther))
		if err != nil {
			t.Fatal(err)
		}
		if v.AcceptedBy != tt.want || v.Accepted != (tt.want != "") {
			t.Fatalf("%s: verdict %+v, want AcceptedBy %q", tt.policy, v, tt.want)
		}
	}
}
