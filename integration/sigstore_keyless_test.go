package integration_test

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/pullgate/pullgate/integration/harness"
)

// Keyless-style signatures, offline: a test CA issues a Fulcio-like leaf (e-mail SAN,
// code-signing EKU, both issuer extensions), cosign signs with it (--certificate,
// --certificate-chain, no Rekor upload: TOOLING.md 4), so the .sig layer carries the
// certificate and chain but no Rekor entry. For the fulcio requirement, which needs one,
// the test logs the signature with its own Rekor key: it adds the SET annotation cosign
// would have written and rewrites the .sig manifest. containers/image (v5.39.3 reads
// both fulcio and pki) judges the same images directly.

const (
	keylessEmail  = "signer@example.test"
	keylessIssuer = "https://issuer.example.test"
)

func TestSigstoreKeylessVerdictsMatchContainersImage(t *testing.T) {
	reg := harness.StartRegistry(t)
	cosign := harness.NewCosign(t)
	ca := harness.NewTestCA(t)
	rekor := harness.NewFakeRekor(t)
	now := time.Now()
	leafKey := harness.NewECDSAKey(t)
	leaf := ca.IssueLeaf(t, leafKey, harness.Leaf{Email: keylessEmail, Issuer: keylessIssuer,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)})
	key := cosign.ImportKeyPair(t, harness.PrivateKeyPEM(t, leafKey), "leaf")
	leafPEM := cosign.WriteFile(t, "leaf.pem", harness.CertsPEM(leaf))
	chainPEM := cosign.WriteFile(t, "chain.pem", harness.CertsPEM(ca.Intermediate, ca.Root))
	rootPEM := cosign.WriteFile(t, "root.pem", harness.CertsPEM(ca.Root))
	rekorPub := cosign.WriteFile(t, "rekor.pub", rekor.PublicKeyPEM(t))

	// certSigned pushes repo:v1 and signs it with the leaf; withSET logs the signature.
	certSigned := func(repo string, withSET bool) func(*testing.T) {
		return func(t *testing.T) {
			d := reg.Push(t, repo+":v1", harness.OCIImage(t, 1, 2048, harness.LinuxAMD64))
			cosign.Sign(t, key, reg.Host+"/"+repo+"@"+d.String(), nil, "--certificate", leafPEM, "--certificate-chain", chainPEM)
			layers := reg.SigLayers(t, repo, d)
			if len(layers) != 1 {
				t.Fatalf("%d layers in the .sig manifest, want 1", len(layers))
			}
			l := layers[0]
			cert, chain := l.Annotations["dev.sigstore.cosign/certificate"], l.Annotations["dev.sigstore.cosign/chain"]
			if cert == "" || chain == "" || l.Annotations["dev.sigstore.cosign/bundle"] != "" {
				t.Fatalf("cosign wrote annotations %v, want a certificate and a chain and no Rekor bundle", l.Annotations)
			}
			if !withSET {
				return
			}
			sig, err := base64.StdEncoding.DecodeString(l.Annotations["dev.cosignproject.cosign/signature"])
			if err != nil {
				t.Fatal(err)
			}
			l.Annotations["dev.sigstore.cosign/bundle"] = rekor.BundleAnnotation(t, []byte(cert), sig, l.Data, now)
			reg.PutSigLayers(t, repo, d, layers)
		}
	}
	fulcio := func(email, issuer string) map[string]any {
		return map[string]any{"type": "sigstoreSigned", "signedIdentity": matchRepository, "rekorPublicKeyPath": rekorPub,
			"fulcio": map[string]any{"caPath": rootPEM, "oidcIssuer": issuer, "subjectEmail": email}}
	}
	pki := func(email string) map[string]any {
		return map[string]any{"type": "sigstoreSigned", "signedIdentity": matchRepository,
			"pki": map[string]any{"caRootsPath": rootPEM, "subjectEmail": email}}
	}

	cases := []sigCase{
		{name: "fulcio: certificate, chain and SET", repo: "keyless/fulcio", requirement: fulcio(keylessEmail, keylessIssuer),
			sign: certSigned("keyless/fulcio", true), oracle: accept, pullgate: accept,
			acceptedBy: "is a valid sigstore signature"},
		{name: "fulcio: another e-mail required", repo: "keyless/fulcio-email", requirement: fulcio("other@example.test", keylessIssuer),
			sign: certSigned("keyless/fulcio-email", true), oracle: deny, pullgate: deny, reason: "other@example.test"},
		{name: "fulcio: another issuer required", repo: "keyless/fulcio-issuer", requirement: fulcio(keylessEmail, "https://other-issuer.example.test"),
			sign: certSigned("keyless/fulcio-issuer", true), oracle: deny, pullgate: deny, reason: "OIDC issuer"},
		// As cosign left it, offline: no Rekor entry, which fulcio requires.
		{name: "fulcio: no SET", repo: "keyless/fulcio-noset", requirement: fulcio(keylessEmail, keylessIssuer),
			sign: certSigned("keyless/fulcio-noset", false), oracle: deny, pullgate: deny, reason: "bundle"},
		{name: "pki: cosign's certificate signature", repo: "keyless/pki", requirement: pki(keylessEmail),
			sign: certSigned("keyless/pki", false), oracle: accept, pullgate: accept,
			acceptedBy: "is a valid sigstore signature"},
		{name: "pki: another e-mail required", repo: "keyless/pki-email", requirement: pki("other@example.test"),
			sign: certSigned("keyless/pki-email", false), oracle: deny, pullgate: deny, reason: "other@example.test"},
	}
	runSigCases(t, reg, cases)
}
