package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// signerRSABits is the size of the signing key: RSA-3072 is what gpg 2.2 (Debian
// bookworm's) generates by default, so verification costs what it costs at most sites.
const signerRSABits = 3072

// signer makes simple signatures (containers-signature(5)) the way skopeo's
// `copy --sign-by` does, with a key generated here, and stores them as skopeo writes
// lookaside files.
type signer struct {
	entity *openpgp.Entity
	sigDir string // lookaside root: <sigDir>/<repository>@sha256=<hex>/signature-1
}

// trustFiles are the policy pullgate enforces.
type trustFiles struct {
	policy      string // policy.json: signedBy the generated key for upstreamName
	registriesD string // registries.d: the lookaside for upstreamName
	publicKey   string // the generated public key, binary (gpg --export)
}

func newSigner(sigDir string) (*signer, error) {
	e, err := openpgp.NewEntity("pullgate-bench", "", "bench@pullgate.test",
		&packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: signerRSABits})
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	if err := os.MkdirAll(sigDir, 0o700); err != nil {
		return nil, err
	}
	return &signer{entity: e, sigDir: sigDir}, nil
}

// signaturePayload is the JSON a simple signature signs (containers-signature(5)).
type signaturePayload struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional struct {
		Creator   string `json:"creator"`
		Timestamp int64  `json:"timestamp"`
	} `json:"optional"`
}

// sign writes the lookaside file for the manifest digest d of repository repo, with the
// identity <upstreamName>/<repo>:<tag>.
func (s *signer) sign(repo, tag string, d v1.Hash) error {
	var p signaturePayload
	p.Critical.Identity.DockerReference = upstreamName + "/" + repo + ":" + tag
	p.Critical.Image.DockerManifestDigest = d.String()
	p.Critical.Type = "atomic container signature"
	p.Optional.Creator = "pullgate-bench"
	p.Optional.Timestamp = time.Now().Unix()
	payload, err := json.Marshal(p)
	if err != nil {
		return err
	}
	var msg bytes.Buffer
	w, err := openpgp.Sign(&msg, s.entity, &openpgp.FileHints{IsBinary: true}, nil)
	if err != nil {
		return fmt.Errorf("sign %s@%s: %w", repo, d, err)
	}
	if _, err := w.Write(payload); err != nil {
		return fmt.Errorf("sign %s@%s: %w", repo, d, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("sign %s@%s: %w", repo, d, err)
	}
	dir := filepath.Join(s.sigDir, filepath.FromSlash(repo)+"@"+d.Algorithm+"="+d.Hex)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "signature-1"), msg.Bytes(), 0o600)
}

// writeTrust writes the public key, a policy.json that requires a signature by it for
// everything from upstreamName (and rejects the rest), and a registries.d entry pointing
// upstreamName's lookaside at lookaside.
func (s *signer) writeTrust(dir string, lookaside *url.URL) (*trustFiles, error) {
	f := &trustFiles{
		policy:      filepath.Join(dir, "policy.json"),
		registriesD: filepath.Join(dir, "registries.d"),
		publicKey:   filepath.Join(dir, "signer.gpg"),
	}
	var pub bytes.Buffer
	if err := s.entity.Serialize(&pub); err != nil {
		return nil, fmt.Errorf("export public key: %w", err)
	}
	if err := os.WriteFile(f.publicKey, pub.Bytes(), 0o600); err != nil {
		return nil, err
	}
	type requirement struct {
		Type    string `json:"type"`
		KeyType string `json:"keyType,omitempty"`
		KeyPath string `json:"keyPath,omitempty"`
	}
	policy := map[string]any{
		"default": []requirement{{Type: "reject"}},
		"transports": map[string]any{
			"docker": map[string][]requirement{
				upstreamName: {{Type: "signedBy", KeyType: "GPGKeys", KeyPath: f.publicKey}},
			},
		},
	}
	pj, err := json.MarshalIndent(policy, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.policy, pj, 0o600); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(f.registriesD, 0o700); err != nil {
		return nil, err
	}
	regd := fmt.Sprintf("docker:\n  %s:\n    lookaside: %s\n", upstreamName, lookaside)
	if err := os.WriteFile(filepath.Join(f.registriesD, "bench.yaml"), []byte(regd), 0o600); err != nil {
		return nil, err
	}
	return f, nil
}

// lookasideServer serves sigDir over http on 127.0.0.1, as a static web server would
// serve the files skopeo wrote; signature-2 and later are 404, which ends the lookup.
type lookasideServer struct {
	srv *http.Server
	url *url.URL
}

func startLookaside(sigDir string) (*lookasideServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(sigDir)), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &lookasideServer{srv: srv, url: &url.URL{Scheme: "http", Host: ln.Addr().String()}}, nil
}

func (l *lookasideServer) close() { _ = l.srv.Close() }
