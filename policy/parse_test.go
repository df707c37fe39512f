package policy

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/pullgate/pullgate/internal/testsupport"
)

// parseCase is one policy text and the error substring expected ("" means it parses).
type parseCase struct {
	name    string
	policy  string
	wantErr string
}

// req wraps requirement objects into a policy whose docker scope quay.io uses them, so
// errors carry a realistic path.
func req(reqs string) string {
	return `{"default":[{"type":"reject"}],"transports":{"docker":{"quay.io":[` + reqs + `]}}}`
}

const reqPath = `transports.docker["quay.io"][0]`

// TestDecodeSpecVectors covers SPEC 10.1 and the rest of the SPEC 1.7 catalogue: what
// containers/image refuses is refused, with the JSON path and the rule; what it accepts
// parses. Key files are not loaded here (see TestParseLoadsKeys).
func TestDecodeSpecVectors(t *testing.T) {
	sigstore := func(fields string) string { return req(`{"type":"sigstoreSigned",` + fields + `}`) }
	tests := []parseCase{
		// 10.1 #1
		{"empty object", `{}`, `missing required key "default"`},
		{"empty default", `{"default":[]}`, "default: a requirement list must not be empty"},
		{"null default", `{"default":null}`, "default: a requirement list must not be empty"},
		{"default not an array", `{"default":{}}`, "default: expected an array"},
		// 10.1 #2, #3, #12
		{"duplicate default", `{"default":[{"type":"reject"}],"default":[{"type":"reject"}]}`, "default: duplicate key"},
		{"unknown top-level key", `{"defaults":[{"type":"reject"}]}`, "defaults: unknown key"},
		{"trailing garbage", `{"default":[{"type":"reject"}]} x`, "after the JSON object"},
		{"trailing object", `{"default":[{"type":"reject"}]}{}`, "after the JSON object"},
		{"not an object", `[]`, "expected a JSON object"},
		{"null policy", `null`, "expected a JSON object"},
		{"case-mismatched key", req(`{"type":"signedBy","keyType":"GPGKeys","KeyPath":"/k"}`), reqPath + ".KeyPath: unknown key"},
		{"case-mismatched type", req(`{"Type":"reject"}`), `missing required key "type"`},
		{"type value case", req(`{"type":"Reject"}`), reqPath + `.type: unknown requirement type "Reject"`},
		// 10.1 #4
		{"insecureAcceptAnything with extra key", `{"default":[{"type":"insecureAcceptAnything","x":1}]}`, "default[0].x: unknown key"},
		{"reject with extra key", `{"default":[{"type":"reject","x":1}]}`, "default[0].x: unknown key"},
		{"unknown requirement type", `{"default":[{"type":"acceptEverything"}]}`, `default[0].type: unknown requirement type "acceptEverything"`},
		{"requirement null", `{"default":[null]}`, "default[0]: expected a JSON object, got null"},
		{"requirement not an object", `{"default":["reject"]}`, "default[0]: expected a JSON object"},
		{"type not a string", `{"default":[{"type":1}]}`, "default[0].type: expected a string"},
		// 10.1 #5
		{"signedBy without keyType", req(`{"type":"signedBy","keyPath":"/k"}`), reqPath + `: missing required key "keyType"`},
		{"signedBy keyType signedByGPGKeys", req(`{"type":"signedBy","keyType":"signedByGPGKeys","keyPath":"/k"}`), ""},
		{"signedBy keyType X509Certificates", req(`{"type":"signedBy","keyType":"X509Certificates","keyPath":"/k"}`), ""},
		{"signedBy keyType signedByX509CAs", req(`{"type":"signedBy","keyType":"signedByX509CAs","keyPath":"/k"}`), ""},
		{"signedBy unknown keyType", req(`{"type":"signedBy","keyType":"gpgkeys","keyPath":"/k"}`), reqPath + `.keyType: unrecognized keyType value "gpgkeys"`},
		{"signedBy keyType null", req(`{"type":"signedBy","keyType":null,"keyPath":"/k"}`), reqPath + `.keyType: unrecognized keyType value ""`},
		// 10.1 #6
		{"signedBy keyPath and keyData", req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","keyData":"AA=="}`), "found keyPath and keyData"},
		{"signedBy keyPath and keyPaths", req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","keyPaths":["/k"]}`), "found keyPath and keyPaths"},
		{"signedBy keyPaths and keyData", req(`{"type":"signedBy","keyType":"GPGKeys","keyPaths":["/k"],"keyData":"AA=="}`), "found keyPaths and keyData"},
		{"signedBy all three key sources", req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","keyPaths":["/k"],"keyData":"AA=="}`), "found keyPath and keyPaths and keyData"},
		{"signedBy no key source", req(`{"type":"signedBy","keyType":"GPGKeys"}`), reqPath + ": exactly one of keyPath, keyPaths and keyData must be specified, none is"},
		{"signedBy keyPaths empty", req(`{"type":"signedBy","keyType":"GPGKeys","keyPaths":[]}`), ""},
		{"signedBy keyPath empty", req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":""}`), reqPath + ".keyPath: must not be empty"},
		{"signedBy keyPath null", req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":null}`), reqPath + ".keyPath: must not be empty"},
		{"signedBy keyPaths null", req(`{"type":"signedBy","keyType":"GPGKeys","keyPaths":null}`), reqPath + ".keyPaths: must be an array"},
		{"signedBy keyPaths not strings", req(`{"type":"signedBy","keyType":"GPGKeys","keyPaths":1}`), reqPath + ".keyPaths: expected an array of strings"},
		{"signedBy keyPaths wrong element type", req(`{"type":"signedBy","keyType":"GPGKeys","keyPaths":[1]}`), reqPath + ".keyPaths: expected an array of strings"},
		{"signedBy keyData null", req(`{"type":"signedBy","keyType":"GPGKeys","keyData":null}`), reqPath + ".keyData: must be a base64 string"},
		{"signedBy keyData empty string", req(`{"type":"signedBy","keyType":"GPGKeys","keyData":""}`), ""},
		// 10.1 #7
		{"signedBy keyData not base64", req(`{"type":"signedBy","keyType":"GPGKeys","keyData":"not base64!"}`), reqPath + ".keyData: invalid base64"},
		{"signedBy keyData URL-safe base64", req(`{"type":"signedBy","keyType":"GPGKeys","keyData":"-_8="}`), reqPath + ".keyData: invalid base64"},
		{"signedBy unknown key", req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","x":1}`), reqPath + ".x: unknown key"},
		// 10.1 #8 and the rest of sigstoreSigned
		{"sigstore keyPath", sigstore(`"keyPath":"/k"`), ""},
		{"sigstore keyPath and fulcio", sigstore(`"keyPath":"/k","fulcio":{"caPath":"/ca","oidcIssuer":"https://i","subjectEmail":"a@b"},"rekorPublicKeyPath":"/r"`), "exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio and pki must be specified, found 2"},
		{"sigstore no key source", sigstore(`"rekorPublicKeyPath":"/r"`), "found 0"},
		{"sigstore fulcio without rekor", sigstore(`"fulcio":{"caPath":"/ca","oidcIssuer":"https://i","subjectEmail":"a@b"}`), "must be specified when fulcio is used"},
		{"sigstore fulcio with rekor", sigstore(`"fulcio":{"caPath":"/ca","oidcIssuer":"https://i","subjectEmail":"a@b"},"rekorPublicKeyPath":"/r"`), ""},
		{"sigstore pki with rekor", sigstore(`"pki":{"caRootsPath":"/ca","subjectEmail":"a@b"},"rekorPublicKeyPath":"/r"`), "not supported with pki"},
		{"sigstore pki", sigstore(`"pki":{"caRootsPath":"/ca","subjectHostname":"h.example"}`), ""},
		{"sigstore keyPaths empty", sigstore(`"keyPaths":[]`), reqPath + ".keyPaths: must contain at least one entry"},
		{"sigstore keyPaths null", sigstore(`"keyPaths":null`), reqPath + ".keyPaths: must contain at least one entry"},
		{"sigstore keyDatas empty", sigstore(`"keyDatas":[]`), reqPath + ".keyDatas: must contain at least one entry"},
		{"sigstore rekorPublicKeyPaths empty", sigstore(`"keyPath":"/k","rekorPublicKeyPaths":[]`), reqPath + ".rekorPublicKeyPaths: must contain at least one entry"},
		{"sigstore rekorPublicKeyDatas empty", sigstore(`"keyPath":"/k","rekorPublicKeyDatas":[]`), reqPath + ".rekorPublicKeyDatas: must contain at least one entry"},
		{"sigstore two rekor sources", sigstore(`"keyPath":"/k","rekorPublicKeyPath":"/r","rekorPublicKeyData":"AA=="`), "at most one of rekorPublicKeyPath"},
		{"sigstore key with rekor", sigstore(`"keyPath":"/k","rekorPublicKeyPaths":["/r1","/r2"]`), ""},
		// containers/image counts an empty path or a null datum as "not set".
		{"sigstore empty keyPath beside keyData", sigstore(`"keyPath":"","keyData":"AA=="`), ""},
		{"sigstore null keyData beside keyPath", sigstore(`"keyPath":"/k","keyData":null`), ""},
		{"sigstore only an empty keyPath", sigstore(`"keyPath":""`), "found 0"},
		{"sigstore fulcio missing subjectEmail", sigstore(`"fulcio":{"caPath":"/ca","oidcIssuer":"https://i"},"rekorPublicKeyPath":"/r"`), reqPath + ".fulcio: subjectEmail must be specified"},
		{"sigstore fulcio missing oidcIssuer", sigstore(`"fulcio":{"caPath":"/ca","subjectEmail":"a@b"},"rekorPublicKeyPath":"/r"`), reqPath + ".fulcio: oidcIssuer must be specified"},
		{"sigstore fulcio empty subjectEmail", sigstore(`"fulcio":{"caPath":"/ca","oidcIssuer":"https://i","subjectEmail":""},"rekorPublicKeyPath":"/r"`), "subjectEmail must be specified"},
		{"sigstore fulcio caPath and caData", sigstore(`"fulcio":{"caPath":"/ca","caData":"AA==","oidcIssuer":"https://i","subjectEmail":"a@b"},"rekorPublicKeyPath":"/r"`), "caPath and caData cannot be used together"},
		{"sigstore fulcio no CA", sigstore(`"fulcio":{"oidcIssuer":"https://i","subjectEmail":"a@b"},"rekorPublicKeyPath":"/r"`), "one of caPath and caData must be specified"},
		{"sigstore fulcio unknown key", sigstore(`"fulcio":{"caPath":"/ca","oidcIssuer":"https://i","subjectEmail":"a@b","x":1},"rekorPublicKeyPath":"/r"`), reqPath + ".fulcio.x: unknown key"},
		{"sigstore fulcio null", sigstore(`"fulcio":null,"rekorPublicKeyPath":"/r"`), reqPath + ".fulcio: expected a JSON object, got null"},
		{"sigstore pki neither subject", sigstore(`"pki":{"caRootsPath":"/ca"}`), "at least one of subjectEmail and subjectHostname"},
		{"sigstore pki both intermediates", sigstore(`"pki":{"caRootsPath":"/ca","caIntermediatesPath":"/i","caIntermediatesData":"AA==","subjectEmail":"a@b"}`), "caIntermediatesPath and caIntermediatesData cannot be used together"},
		{"sigstore pki both roots", sigstore(`"pki":{"caRootsPath":"/ca","caRootsData":"AA==","subjectEmail":"a@b"}`), "caRootsPath and caRootsData cannot be used together"},
		{"sigstore pki no roots", sigstore(`"pki":{"subjectEmail":"a@b"}`), "one of caRootsPath and caRootsData must be specified"},
		{"sigstore unknown key", sigstore(`"keyPath":"/k","keyType":"GPGKeys"`), reqPath + ".keyType: unknown key"},
		// 10.1 #9
		{"signedIdentity null", req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":null}`), reqPath + ".signedIdentity: expected a JSON object, got null"},
		{"matchExact with extra key", req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"matchExact","x":1}}`), reqPath + ".signedIdentity.x: unknown key"},
		{"exactReference without tag", req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"exactReference","dockerReference":"busybox"}}`), reqPath + `.signedIdentity.dockerReference: "busybox" contains neither a tag nor a digest`},
		{"exactReference normalised", req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"exactReference","dockerReference":"busybox:1"}}`), ""},
		{"exactReference invalid", req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"exactReference","dockerReference":"UPPER/Case:1"}}`), "invalid reference"},
		{"exactReference missing field", req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"exactReference"}}`), `missing required key "dockerReference"`},
		{"exactRepository with a tag", req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"exactRepository","dockerRepository":"busybox:1"}}`), ""},
		{"exactRepository invalid", req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"exactRepository","dockerRepository":""}}`), "invalid repository"},
		{"remapIdentity prefix with tag", req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"remapIdentity","prefix":"example.com/ns:tag","signedPrefix":"x.example"}}`), reqPath + `.signedIdentity.prefix: prefix "example.com/ns:tag" is not valid`},
		{"remapIdentity signedPrefix with digest", req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"remapIdentity","prefix":"example.com","signedPrefix":"x.example/a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}`), reqPath + ".signedIdentity.signedPrefix: prefix"},
		{"remapIdentity valid", req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"remapIdentity","prefix":"private-mirror:5000/vendor-mirror","signedPrefix":"vendor.example.com"}}`), ""},
		{"remapIdentity short name passes", req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"remapIdentity","prefix":"busybox","signedPrefix":"x.example"}}`), ""},
		{"remapIdentity missing signedPrefix", req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"remapIdentity","prefix":"a.example"}}`), `missing required key "signedPrefix"`},
		{"unknown identity type", req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"matchAnything"}}`), `.signedIdentity.type: unknown identity type "matchAnything"`},
		{"identity not an object", req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":"matchExact"}`), ".signedIdentity: expected a JSON object"},
		// 10.1 #10
		{"unknown transport", `{"default":[{"type":"reject"}],"transports":{"dokcer":{"docker.io":[{"type":"insecureAcceptAnything"}]}}}`, ""},
		// 10.1 #11
		{"signedBaseLayer", `{"default":[{"type":"signedBaseLayer","baseLayerIdentity":{"type":"matchRepository"}}]}`, ""},
		{"signedBaseLayer without identity", `{"default":[{"type":"signedBaseLayer"}]}`, `missing required key "baseLayerIdentity"`},
		{"signedBaseLayer bad identity", `{"default":[{"type":"signedBaseLayer","baseLayerIdentity":{"type":"matchRepository","x":1}}]}`, "default[0].baseLayerIdentity.x: unknown key"},
		// transports
		{"transports empty", `{"default":[{"type":"reject"}],"transports":{}}`, ""},
		{"transports null", `{"default":[{"type":"reject"}],"transports":null}`, "transports: expected a JSON object, got null"},
		{"transport null", `{"default":[{"type":"reject"}],"transports":{"docker":null}}`, "transports.docker: expected a JSON object, got null"},
		{"duplicate transport", `{"default":[{"type":"reject"}],"transports":{"docker":{},"docker":{}}}`, "transports.docker: duplicate key"},
		{"duplicate scope", `{"default":[{"type":"reject"}],"transports":{"docker":{"a.example":[{"type":"reject"}],"a.example":[{"type":"reject"}]}}}`, `transports.docker["a.example"]: duplicate key`},
		{"empty scope list", `{"default":[{"type":"reject"}],"transports":{"docker":{"quay.io":[]}}}`, `transports.docker["quay.io"]: a requirement list must not be empty`},
		{"null scope list", `{"default":[{"type":"reject"}],"transports":{"docker":{"quay.io":null}}}`, `transports.docker["quay.io"]: a requirement list must not be empty`},
		{"docker scopes are not validated", `{"default":[{"type":"reject"}],"transports":{"docker":{"busybox":[{"type":"reject"}],"UPPER case!":[{"type":"reject"}]}}}`, ""},
		{"dir relative scope", `{"default":[{"type":"reject"}],"transports":{"dir":{"relative/path":[{"type":"reject"}]}}}`, `transports.dir["relative/path"]: unknown key`},
		{"dir root scope", `{"default":[{"type":"reject"}],"transports":{"dir":{"/":[{"type":"reject"}]}}}`, "unknown key"},
		{"dir unclean scope", `{"default":[{"type":"reject"}],"transports":{"dir":{"/a/../b":[{"type":"reject"}]}}}`, "non-canonical"},
		{"dir scope", `{"default":[{"type":"reject"}],"transports":{"dir":{"/srv/images":[{"type":"reject"}],"":[{"type":"reject"}]}}}`, ""},
		{"oci scope with tag", `{"default":[{"type":"reject"}],"transports":{"oci":{"/srv/layout:tag":[{"type":"reject"}]}}}`, ""},
		{"docker-daemon scope", `{"default":[{"type":"reject"}],"transports":{"docker-daemon":{"busybox":[{"type":"reject"}]}}}`, "does not support any scopes"},
		{"docker-daemon default scope", `{"default":[{"type":"reject"}],"transports":{"docker-daemon":{"":[{"type":"insecureAcceptAnything"}]}}}`, ""},
		{"containers-storage scope", `{"default":[{"type":"reject"}],"transports":{"containers-storage":{"[overlay@/var/lib/containers/storage]docker.io/library/busybox":[{"type":"reject"}]}}}`, ""},
		{"containers-storage scope without store", `{"default":[{"type":"reject"}],"transports":{"containers-storage":{"docker.io/library/busybox":[{"type":"reject"}]}}}`, "unknown key"},
		{"atomic scope", `{"default":[{"type":"reject"}],"transports":{"atomic":{"registry.example:8443/ns/stream:tag":[{"type":"reject"}]}}}`, ""},
		{"atomic bad scope", `{"default":[{"type":"reject"}],"transports":{"atomic":{"a/b/c/d":[{"type":"reject"}]}}}`, "unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decode([]byte(tt.policy), "policy.json")
			testsupport.WantErr(t, err, tt.wantErr)
			if err != nil && !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("error %v does not wrap ErrInvalidPolicy", err)
			}
			if err != nil && !strings.Contains(err.Error(), "policy.json") {
				t.Fatalf("error %q does not name the file", err)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	f := newFixture(t)
	path := f.write("policy.json", []byte(`{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"`+f.path("trusted.gpg")+`"}]}`))
	p, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != path {
		t.Fatalf("Name() = %q", p.Name())
	}
	if _, err := LoadFile(f.path("missing.json")); err == nil || !errors.Is(err, ErrInvalidPolicy) || !strings.Contains(err.Error(), "missing.json") {
		t.Fatalf("missing file: error = %v", err)
	}
	bad := f.write("bad.json", []byte(`{"default":[{"type":"reject","x":1}]}`))
	if _, err := LoadFile(bad); err == nil || !strings.Contains(err.Error(), bad+": default[0].x: unknown key") {
		t.Fatalf("bad file: error = %v", err)
	}
}

// TestParseLoadsKeys checks DESIGN.md difference 5: every key file is read and parsed at
// load time, and a missing or unparsable one is an error naming it and its JSON path.
func TestParseLoadsKeys(t *testing.T) {
	f := newFixture(t)
	f.write("garbage.gpg", []byte("this is not a key"))
	f.write("empty.gpg", nil)
	ecPEM, _ := testsupport.ECDSAKeyPEM(t)
	f.write("cosign.pub", ecPEM)
	rekorPEM, _ := testsupport.ECDSAKeyPEM(t)
	f.write("rekor.pub", rekorPEM)
	f.write("ed25519.pub", ed25519KeyPEM(t))
	f.write("ca.pem", caPEM(t))
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	signedBy := func(src string) string {
		return strings.ReplaceAll(req(`{"type":"signedBy","keyType":"GPGKeys",`+src+`}`), "$DIR", f.dir)
	}
	sigstore := func(src string) string {
		return strings.ReplaceAll(req(`{"type":"sigstoreSigned",`+src+`}`), "$DIR", f.dir)
	}
	tests := []parseCase{
		{"binary keyring", signedBy(`"keyPath":"$DIR/trusted.gpg"`), ""},
		{"armored keyring", signedBy(`"keyPath":"$DIR/trusted.asc"`), ""},
		{"keyPaths", signedBy(`"keyPaths":["$DIR/trusted.gpg","$DIR/other.gpg"]`), ""},
		{"keyData", signedBy(`"keyData":"` + b64(f.trusted.Public(t)) + `"`), ""},
		{"keyPaths empty loads nothing", signedBy(`"keyPaths":[]`), ""},
		{"missing key file", signedBy(`"keyPath":"$DIR/missing.gpg"`), reqPath + ".keyPath: reading key file: open " + f.dir + "/missing.gpg: no such file"},
		{"missing second key file", signedBy(`"keyPaths":["$DIR/trusted.gpg","$DIR/missing.gpg"]`), reqPath + ".keyPaths[1]: reading key file"},
		{"unparsable key file", signedBy(`"keyPath":"$DIR/garbage.gpg"`), reqPath + `.keyPath: key file "` + f.dir + `/garbage.gpg": reading OpenPGP keyring`},
		{"empty key file", signedBy(`"keyPath":"$DIR/empty.gpg"`), "no OpenPGP public keys found"},
		{"empty keyData", signedBy(`"keyData":""`), reqPath + ".keyData: keyData: no OpenPGP public keys found"},
		{"key file is a directory", signedBy(`"keyPath":"$DIR"`), "reading key file"},
		{"unimplemented keyType reads but does not parse", strings.ReplaceAll(req(`{"type":"signedBy","keyType":"X509Certificates","keyPath":"$DIR/ca.pem"}`), "$DIR", f.dir), ""},
		{"unimplemented keyType with missing file", strings.ReplaceAll(req(`{"type":"signedBy","keyType":"X509Certificates","keyPath":"$DIR/nope.pem"}`), "$DIR", f.dir), "reading key file"},
		// sigstoreSigned key material goes through policy/sigstore's parsers.
		{"sigstore ECDSA key", sigstore(`"keyPath":"$DIR/cosign.pub"`), ""},
		{"sigstore Ed25519 key", sigstore(`"keyPaths":["$DIR/cosign.pub","$DIR/ed25519.pub"]`), ""},
		{"sigstore keyDatas", sigstore(`"keyDatas":["` + b64(ecPEM) + `"]`), ""},
		{"sigstore keyDatas with a null entry", sigstore(`"keyDatas":["` + b64(ecPEM) + `",null]`), reqPath + ".keyDatas[1]: null is not a valid PEM datum"},
		{"sigstore key with rekor", sigstore(`"keyPath":"$DIR/cosign.pub","rekorPublicKeyData":"` + b64(rekorPEM) + `"`), ""},
		{"sigstore missing key", sigstore(`"keyPath":"$DIR/missing.pub"`), reqPath + ".keyPath: reading key file"},
		{"sigstore unparsable key", sigstore(`"keyPath":"$DIR/garbage.gpg"`), reqPath + ".keyPath: "},
		{"sigstore non-ECDSA rekor key", sigstore(`"keyPath":"$DIR/cosign.pub","rekorPublicKeyPath":"$DIR/ed25519.pub"`), reqPath + ".rekorPublicKeyPath: "},
		{"sigstore fulcio", sigstore(`"fulcio":{"caPath":"$DIR/ca.pem","oidcIssuer":"https://issuer.example","subjectEmail":"a@example.test"},"rekorPublicKeyPath":"$DIR/rekor.pub"`), ""},
		{"sigstore fulcio missing CA", sigstore(`"fulcio":{"caPath":"$DIR/nope.pem","oidcIssuer":"https://issuer.example","subjectEmail":"a@example.test"},"rekorPublicKeyPath":"$DIR/rekor.pub"`), reqPath + ".fulcio.caPath: reading key file"},
		{"sigstore pki", sigstore(`"pki":{"caRootsData":"` + b64(caPEM(t)) + `","caIntermediatesPath":"$DIR/ca.pem","subjectEmail":"a@example.test"}`), ""},
		{"sigstore pki bad roots", sigstore(`"pki":{"caRootsPath":"$DIR/garbage.gpg","subjectEmail":"a@example.test"}`), reqPath + ".pki.caRootsPath: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.policy), "policy.json")
			testsupport.WantErr(t, err, tt.wantErr)
			if err != nil {
				var le *LoadError
				if !errors.As(err, &le) || !errors.Is(err, ErrInvalidPolicy) {
					t.Fatalf("error %v is not an ErrInvalidPolicy LoadError", err)
				}
				return
			}
			if p == nil {
				t.Fatal("nil policy")
			}
		})
	}
}

func ed25519KeyPEM(t *testing.T) []byte {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testsupport.PublicKeyPEM(t, pub)
}

func caPEM(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
