package policy

import (
	"context"
	"strings"
	"testing"
)

// TestIdentitySpecVectors covers SPEC 10.3 (#19-#26): a signature that is valid in every
// other way (trusted key, right digest) is accepted or not according to signedIdentity.
func TestIdentitySpecVectors(t *testing.T) {
	f := newFixture(t)
	d := f.digest.String()
	tests := []struct {
		name     string
		identity string // signedIdentity JSON; "" for the default
		intended string
		signed   string
		want     bool
	}{
		// 19: matchRepoDigestOrExact (the default)
		{"default: same tag", "", "busybox:1", "docker.io/library/busybox:1", true},
		{"default: short signed name", "", "busybox:1", "busybox:1", true},
		{"default: other tag", "", "busybox:1", "busybox:2", false},
		{"default: name-only signature (cosign style)", "", "busybox:1", "docker.io/library/busybox", false},
		{"default: digest pull, any tag", "", "busybox@" + d, "busybox:anything", true},
		{"default: digest pull, other repository", "", "busybox@" + d, "other:1", false},
		{"default: digest pull, name-only signature", "", "busybox@" + d, "busybox", false},
		{"explicit matchRepoDigestOrExact", `{"type":"matchRepoDigestOrExact"}`, "busybox:1", "busybox:1", true},
		// 20: matchExact
		{"matchExact: digest pull, tag signature", `{"type":"matchExact"}`, "busybox@" + d, "busybox:1", false},
		{"matchExact: digest pull, digest signature", `{"type":"matchExact"}`, "busybox@" + d, "busybox@" + d, true},
		{"matchExact: same tag", `{"type":"matchExact"}`, "busybox:1", "docker.io/library/busybox:1", true},
		{"matchExact: name-only signature", `{"type":"matchExact"}`, "busybox:latest", "busybox", false},
		// 21: matchRepository
		{"matchRepository: ggcr spelling", `{"type":"matchRepository"}`, "docker.io/library/busybox:latest", "index.docker.io/library/busybox", true},
		{"matchRepository: other tag", `{"type":"matchRepository"}`, "busybox:1", "busybox:2", true},
		{"matchRepository: other repository", `{"type":"matchRepository"}`, "busybox:1", "docker.io/library/busybox2", false},
		// 22: exactReference
		{"exactReference: mirror name", `{"type":"exactReference","dockerReference":"vendor.example/app:1"}`, "mirror.local/app:1", "vendor.example/app:1", true},
		{"exactReference: other tag", `{"type":"exactReference","dockerReference":"vendor.example/app:1"}`, "mirror.local/app:1", "vendor.example/app:2", false},
		{"exactReference: name-only signature", `{"type":"exactReference","dockerReference":"vendor.example/app:1"}`, "vendor.example/app:1", "vendor.example/app", false},
		// exactRepository
		{"exactRepository: tag ignored", `{"type":"exactRepository","dockerRepository":"vendor.example/app:9"}`, "mirror.local/app:1", "vendor.example/app", true},
		{"exactRepository: other repository", `{"type":"exactRepository","dockerRepository":"vendor.example/app"}`, "mirror.local/app:1", "vendor.example/other:1", false},
		// 23: remapIdentity
		{"remap: prefix rewritten", `{"type":"remapIdentity","prefix":"private-mirror:5000/vendor-mirror","signedPrefix":"vendor.example.com"}`,
			"private-mirror:5000/vendor-mirror/product-a/image1:latest", "vendor.example.com/product-a/image1:latest", true},
		{"remap: other tag", `{"type":"remapIdentity","prefix":"private-mirror:5000/vendor-mirror","signedPrefix":"vendor.example.com"}`,
			"private-mirror:5000/vendor-mirror/product-a/image1:latest", "vendor.example.com/product-a/image1:v2", false},
		{"remap: prefix is not a path prefix", `{"type":"remapIdentity","prefix":"private-mirror:5000/vendor-mirror","signedPrefix":"vendor.example.com"}`,
			"private-mirror:5000/vendor-mirrorx/p/i:latest", "vendor.example.com/p/i:latest", false},
		{"remap: no remap, intended signed", `{"type":"remapIdentity","prefix":"private-mirror:5000/vendor-mirror","signedPrefix":"vendor.example.com"}`,
			"private-mirror:5000/vendor-mirrorx/p/i:latest", "private-mirror:5000/vendor-mirrorx/p/i:latest", true},
		// 24
		{"remap docker.io: library kept", `{"type":"remapIdentity","prefix":"docker.io","signedPrefix":"signed.example"}`, "busybox:1", "signed.example/library/busybox:1", true},
		{"remap docker.io: library dropped", `{"type":"remapIdentity","prefix":"docker.io","signedPrefix":"signed.example"}`, "busybox:1", "signed.example/busybox:1", false},
		{"remap namespace", `{"type":"remapIdentity","prefix":"docker.io/library","signedPrefix":"not-docker-signed.example/ns"}`, "busybox:1", "not-docker-signed.example/ns/busybox:1", true},
		{"remap: digest pull", `{"type":"remapIdentity","prefix":"docker.io","signedPrefix":"signed.example"}`, "busybox@" + d, "signed.example/library/busybox:v9", true},
		// 25: ports are compared literally
		{"remap: host prefix does not match host:port", `{"type":"remapIdentity","prefix":"example.com","signedPrefix":"signed.example"}`, "example.com:5000/x:1", "signed.example/x:1", false},
		{"remap: host:port prefix does not match a longer port", `{"type":"remapIdentity","prefix":"example.com:5000","signedPrefix":"signed.example"}`, "example.com:50000/x:1", "signed.example/x:1", false},
		{"remap: mirror.example does not apply to prefixmirror.example", `{"type":"remapIdentity","prefix":"mirror.example","signedPrefix":"signed.example"}`, "prefixmirror.example/ns/image:tag", "prefixmirror.example/ns/image:tag", true},
		{"remap: non-canonical result never matches", `{"type":"remapIdentity","prefix":"docker.io/library","signedPrefix":"docker.io"}`, "busybox:1", "docker.io/busybox:1", false},
		// 26: unparsable signed identities
		{"unparsable signed identity", "", "busybox:1", "UPPER/Case:1", false},
		{"empty signed identity", "", "busybox:1", "", false},
		{"unparsable signed identity, matchRepository", `{"type":"matchRepository"}`, "busybox:1", "not a reference", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			identity := ""
			if tt.identity != "" {
				identity = `,"signedIdentity":` + tt.identity
			}
			p := f.policy(`{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"$DIR/trusted.gpg"` + identity + `}]}`)
			v, err := p.Evaluate(context.Background(), f.image(tt.intended), sigSource(f.sig(f.trusted.Primary(), f.digest, tt.signed)))
			if err != nil {
				t.Fatal(err)
			}
			if v.Accepted != tt.want {
				t.Fatalf("accepted = %v, want %v: %s", v.Accepted, tt.want, v.Reason)
			}
			if !tt.want && !strings.Contains(v.Reason, "is not accepted") {
				t.Fatalf("reason %q does not blame the identity", v.Reason)
			}
		})
	}
}

// TestBadIdentityRejectsOnlyItsSignature is the second half of SPEC 10.3 #26.
func TestBadIdentityRejectsOnlyItsSignature(t *testing.T) {
	f := newFixture(t)
	p := f.policy(`{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"$DIR/trusted.gpg"}]}`)
	v, err := p.Evaluate(context.Background(), f.image("busybox:1"), sigSource(
		f.sig(f.trusted.Primary(), f.digest, "UPPER/Case:1"),
		f.sig(f.trusted.Primary(), f.digest, ""),
		f.sig(f.trusted.Primary(), f.digest, "busybox:1"),
	))
	if err != nil || !v.Accepted {
		t.Fatalf("Evaluate = %+v, %v; want acceptance by signature 3", v, err)
	}
	if !strings.Contains(v.Reason, "signature 3") {
		t.Fatalf("reason %q does not name signature 3", v.Reason)
	}
}
