package integration_test

import (
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullgate/pullgate/integration/harness"
)

// Real cosign, real clients, and containers/image as the judge: images in distribution's
// registry are signed with `cosign sign` (key pairs from `cosign generate-key-pair`, no
// Rekor upload); crane and skopeo pull them through the pullgate binary, and the verdict
// must be the one the oracle (policypull, containers/image v5.39.3) reaches pulling the
// same image directly from the registry with the same policy.json and registries.d.
// Where pullgate differs from podman on purpose (DESIGN.md "Where pullgate differs from
// podman", 1 and 6) the test says so and checks both sides of the difference.

func TestSigstoreCosignVerdictsMatchContainersImage(t *testing.T) {
	reg := harness.StartRegistry(t)
	cosign := harness.NewCosign(t)
	otherKey, otherPub := cosign.GenerateKeyPair(t, "other")
	push := func(t *testing.T, repoTag string) v1.Hash {
		return reg.Push(t, repoTag, harness.OCIImage(t, 1, 2048, harness.LinuxAMD64))
	}
	signed := func(repo, key string, flags ...string) func(*testing.T) {
		return func(t *testing.T) {
			cosign.Sign(t, key, reg.Host+"/"+repo+"@"+push(t, repo+":v1").String(), nil, flags...)
		}
	}
	byKey := keyRequirement(cosign.Pub, matchRepository)

	cases := []sigCase{
		{name: "signed, matchRepository", repo: "test/signed", requirement: byKey,
			sign: signed("test/signed", cosign.Key), oracle: accept, pullgate: accept,
			acceptedBy: ".sig layer 1) is a valid sigstore signature"},
		// SPEC.md 10.5 vector 40: cosign signs the repository without a tag, which the default
		// matcher (matchRepoDigestOrExact) refuses.
		{name: "signed, default identity matcher", repo: "test/defaultmatch", requirement: keyRequirement(cosign.Pub, nil),
			sign: signed("test/defaultmatch", cosign.Key), oracle: deny, pullgate: deny,
			reason: `Signature for identity "` + reg.Host + `/test/defaultmatch" is not accepted`},
		{name: "signed with another key", repo: "test/wrongkey", requirement: byKey,
			sign: signed("test/wrongkey", otherKey), oracle: deny, pullgate: deny,
			reason: "cryptographic signature verification failed"},
		{name: "unsigned", repo: "test/unsigned", requirement: byKey,
			sign: func(t *testing.T) { push(t, "test/unsigned:v1") }, oracle: deny, pullgate: deny,
			reason: "A signature was required, but no signature exists"},
		// Vector 44: the .sig of another image (a valid signature, for another digest).
		{name: "signature for another digest", repo: "test/otherdigest", requirement: byKey,
			sign: func(t *testing.T) {
				d := push(t, "test/otherdigest:v1")
				other := push(t, "test/otherdigest:v2")
				cosign.Sign(t, cosign.Key, reg.Host+"/test/otherdigest@"+other.String(), nil)
				reg.CopySignatures(t, "test/otherdigest", other, d)
			},
			oracle: deny, pullgate: deny, reason: "does not match"},
		// Vector 45: signed, but the registries.d section for the repository turns the
		// attachments off: no signature is looked for.
		{name: "use-sigstore-attachments off", repo: "test/noattach", requirement: byKey, noAttachments: true,
			sign: signed("test/noattach", cosign.Key), oracle: deny, pullgate: deny,
			reason: "no signature exists"},
		// Vector 47: cosign --recursive signs the index and each platform manifest; podman
		// checks the platform manifest it picks, pullgate each manifest it serves.
		{name: "multi-arch index signed --recursive, pulled by tag", repo: "test/multi", requirement: byKey,
			sign: func(t *testing.T) {
				d := reg.PushIndex(t, "test/multi:v1", harness.OCIIndex(t, 2048, harness.LinuxAMD64, harness.LinuxARM64))
				cosign.Sign(t, cosign.Key, reg.Host+"/test/multi@"+d.String(), nil, "--recursive")
			},
			oracle: accept, pullgate: accept, acceptedBy: "is a valid sigstore signature"},
		// Difference 1 (vector 46): cosign without --recursive signs the index only.
		// podman ignores index signatures and refuses the unsigned platform manifest;
		// pullgate accepts a platform manifest listed by an index whose signature it accepted.
		{name: "multi-arch index signed alone (difference 1)", repo: "test/indexonly", requirement: byKey,
			sign: func(t *testing.T) {
				d := reg.PushIndex(t, "test/indexonly:v1", harness.OCIIndex(t, 2048, harness.LinuxAMD64, harness.LinuxARM64))
				cosign.Sign(t, cosign.Key, reg.Host+"/test/indexonly@"+d.String(), nil)
			},
			oracle: deny, pullgate: accept, reason: "no signature exists", acceptedBy: "listed by index"},
		// Difference 6: a Sigstore bundle (cosign --new-bundle-format, stored as an OCI
		// referrer; distribution has no referrers API, so cosign uses the sha256-<hex>
		// referrers tag). containers/image does not read bundles: for podman the image is
		// unsigned. pullgate verifies the bundle under the same requirement, with the
		// repository it was found in as its (name-only) identity, which matchRepository
		// accepts.
		{name: "Sigstore bundle (difference 6)", repo: "test/bundle", requirement: byKey,
			sign: func(t *testing.T) {
				d := push(t, "test/bundle:v1")
				cosign.Sign(t, cosign.Key, reg.Host+"/test/bundle@"+d.String(), nil, "--new-bundle-format")
				// The bundle is all there is: a referrers tag, no .sig.
				tags := strings.Fields(harness.Crane(t, "ls", reg.Host+"/test/bundle"))
				if referrers := strings.TrimSuffix(harness.SigTag(d), ".sig"); !slices.Contains(tags, referrers) || slices.Contains(tags, harness.SigTag(d)) {
					t.Fatalf("tags after cosign sign --new-bundle-format: %v, want %s and no .sig", tags, referrers)
				}
			},
			oracle: deny, pullgate: accept, reason: "no signature exists", acceptedBy: "is a valid Sigstore bundle"},
	}

	env := runSigCases(t, reg, cases)

	// cosign verify reads the signatures through pullgate (difference 7: signature
	// attachments of an accepted image are served without a policy check), by its default
	// upstream. By the prefix routing of sigAlias the policy rejects the image (its scopes
	// name the upstream's own name): its .sig is refused too (issue 8.2).
	t.Run("cosign verify through pullgate", func(t *testing.T) {
		d := imageDigest(t, reg, "test/signed:v1")
		alias := env.pg.Host + "/" + sigAlias + "/test/signed@" + d
		if out, err := cosign.Verify(t, cosign.Pub, alias); err == nil || !strings.Contains(out, "is not a manifest pullgate accepted") {
			t.Errorf("cosign verify %s (an image the policy rejects under that name): err %v, want its .sig denied\n%s", alias, err, out)
		}
		for _, ref := range []string{
			env.pg.Host + "/test/signed@" + d,
		} {
			out, err := cosign.Verify(t, cosign.Pub, ref)
			if err != nil || !strings.Contains(out, "The signatures were verified against the specified public key") {
				t.Errorf("cosign verify --key cosign.pub %s: %v\n%s", ref, err, out)
			}
			out, err = cosign.Verify(t, otherPub, ref)
			if err == nil || !strings.Contains(out, "no matching signatures") {
				t.Errorf("cosign verify with the wrong key %s: err %v, want no matching signatures\n%s", ref, err, out)
			}
		}
	})
}
