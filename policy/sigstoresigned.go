package policy

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pullgate/pullgate/policy/sigstore"
	"github.com/pullgate/pullgate/policy/strictjson"
)

// prSigstoreSigned requires a cosign signature verified by public keys, a Fulcio CA with
// Rekor, or a private PKI (SPEC 1.4, 5.4). As in containers/image, an empty path or a
// null datum counts as "not set".
type prSigstoreSigned struct {
	keyPath  string
	keyPaths []string
	keyData  []byte
	keyDatas [][]byte
	fulcio   *fulcioConfig
	pki      *pkiConfig

	rekorKeyPath  string
	rekorKeyPaths []string
	rekorKeyData  []byte
	rekorKeyDatas [][]byte

	identity identityMatcher

	// trust is the loaded key material.
	trust *sigstore.Trust
}

type fulcioConfig struct {
	caPath       string
	caData       []byte
	oidcIssuer   string
	subjectEmail string
}

type pkiConfig struct {
	caRootsPath         string
	caRootsData         []byte
	caIntermediatesPath string
	caIntermediatesData []byte
	subjectEmail        string
	subjectHostname     string
}

// decoder collects the first error of a sequence of member decodes, with its path.
type decoder struct {
	o   rawObject
	err error
}

func (d *decoder) fail(key string, err error) {
	if d.err == nil && err != nil {
		d.err = strictjson.WithPath(strictjson.Key(key), err)
	}
}

// member decodes the member key into dst with decode when it is present and no member
// before it failed.
func member[T any](d *decoder, key string, dst *T, decode func(json.RawMessage) (T, error)) {
	if raw, ok := d.o.get(key); ok && d.err == nil {
		v, err := decode(raw)
		*dst = v
		d.fail(key, err)
	}
}

func (d *decoder) str(key string, dst *string)   { member(d, key, dst, decodeString) }
func (d *decoder) bytes(key string, dst *[]byte) { member(d, key, dst, decodeBytes) }

// nonEmptyStrings decodes an array that must have at least one entry (null included in
// the refusal), the rule for keyPaths and rekorPublicKeyPaths.
func (d *decoder) nonEmptyStrings(key string, dst *[]string) {
	member(d, key, dst, nonEmpty(decodeStrings))
}

func (d *decoder) nonEmptyBytesList(key string, dst *[][]byte) {
	member(d, key, dst, nonEmpty(decodeBytesList))
}

// nonEmpty is decode refusing an array without entries.
func nonEmpty[E any](decode func(json.RawMessage) ([]E, error)) func(json.RawMessage) ([]E, error) {
	return func(raw json.RawMessage) ([]E, error) {
		v, err := decode(raw)
		if err == nil && len(v) == 0 {
			err = errors.New("must contain at least one entry")
		}
		return v, err
	}
}

func parseSigstoreSigned(o rawObject) (*prSigstoreSigned, error) {
	if err := o.only("type", "keyPath", "keyPaths", "keyData", "keyDatas", "fulcio", "pki",
		"rekorPublicKeyPath", "rekorPublicKeyPaths", "rekorPublicKeyData", "rekorPublicKeyDatas",
		"signedIdentity"); err != nil {
		return nil, err
	}
	pr := &prSigstoreSigned{}
	var err error
	if pr.identity, err = parseSignedIdentity(o); err != nil {
		return nil, err
	}
	d := &decoder{o: o}
	d.str("keyPath", &pr.keyPath)
	d.nonEmptyStrings("keyPaths", &pr.keyPaths)
	d.bytes("keyData", &pr.keyData)
	d.nonEmptyBytesList("keyDatas", &pr.keyDatas)
	member(d, "fulcio", &pr.fulcio, parseFulcio)
	member(d, "pki", &pr.pki, parsePKI)
	d.str("rekorPublicKeyPath", &pr.rekorKeyPath)
	d.nonEmptyStrings("rekorPublicKeyPaths", &pr.rekorKeyPaths)
	d.bytes("rekorPublicKeyData", &pr.rekorKeyData)
	d.nonEmptyBytesList("rekorPublicKeyDatas", &pr.rekorKeyDatas)
	if d.err != nil {
		return nil, d.err
	}

	if n := count(pr.keyPath != "", pr.keyPaths != nil, pr.keyData != nil, pr.keyDatas != nil, pr.fulcio != nil, pr.pki != nil); n != 1 {
		return nil, fmt.Errorf("exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio and pki must be specified, found %d", n)
	}
	rekorSources := count(pr.rekorKeyPath != "", pr.rekorKeyPaths != nil, pr.rekorKeyData != nil, pr.rekorKeyDatas != nil)
	switch {
	case rekorSources > 1:
		return nil, errors.New("at most one of rekorPublicKeyPath, rekorPublicKeyPaths, rekorPublicKeyData and rekorPublicKeyDatas may be specified")
	case pr.fulcio != nil && rekorSources == 0:
		return nil, errors.New("one of rekorPublicKeyPath, rekorPublicKeyPaths, rekorPublicKeyData and rekorPublicKeyDatas must be specified when fulcio is used")
	case pr.pki != nil && rekorSources > 0:
		return nil, errors.New("rekorPublicKeyPath, rekorPublicKeyPaths, rekorPublicKeyData and rekorPublicKeyDatas are not supported with pki")
	}
	return pr, nil
}

func parseFulcio(raw json.RawMessage) (*fulcioConfig, error) {
	o, err := decodeObjectOnly(raw, "caPath", "caData", "oidcIssuer", "subjectEmail")
	if err != nil {
		return nil, err
	}
	f := &fulcioConfig{}
	d := &decoder{o: o}
	d.str("caPath", &f.caPath)
	d.bytes("caData", &f.caData)
	d.str("oidcIssuer", &f.oidcIssuer)
	d.str("subjectEmail", &f.subjectEmail)
	switch {
	case d.err != nil:
		return nil, d.err
	case f.caPath != "" && f.caData != nil:
		return nil, errors.New("caPath and caData cannot be used together")
	case f.caPath == "" && f.caData == nil:
		return nil, errors.New("one of caPath and caData must be specified")
	case f.oidcIssuer == "":
		return nil, errors.New("oidcIssuer must be specified")
	case f.subjectEmail == "":
		return nil, errors.New("subjectEmail must be specified")
	}
	return f, nil
}

func parsePKI(raw json.RawMessage) (*pkiConfig, error) {
	o, err := decodeObjectOnly(raw, "caRootsPath", "caRootsData", "caIntermediatesPath", "caIntermediatesData", "subjectEmail", "subjectHostname")
	if err != nil {
		return nil, err
	}
	p := &pkiConfig{}
	d := &decoder{o: o}
	d.str("caRootsPath", &p.caRootsPath)
	d.bytes("caRootsData", &p.caRootsData)
	d.str("caIntermediatesPath", &p.caIntermediatesPath)
	d.bytes("caIntermediatesData", &p.caIntermediatesData)
	d.str("subjectEmail", &p.subjectEmail)
	d.str("subjectHostname", &p.subjectHostname)
	switch {
	case d.err != nil:
		return nil, d.err
	case p.caRootsPath != "" && p.caRootsData != nil:
		return nil, errors.New("caRootsPath and caRootsData cannot be used together")
	case p.caRootsPath == "" && p.caRootsData == nil:
		return nil, errors.New("one of caRootsPath and caRootsData must be specified")
	case p.caIntermediatesPath != "" && p.caIntermediatesData != nil:
		return nil, errors.New("caIntermediatesPath and caIntermediatesData cannot be used together")
	case p.subjectEmail == "" && p.subjectHostname == "":
		return nil, errors.New("at least one of subjectEmail and subjectHostname must be specified")
	}
	return p, nil
}

func count(conds ...bool) int {
	n := 0
	for _, c := range conds {
		if c {
			n++
		}
	}
	return n
}

func (pr *prSigstoreSigned) typeName() string      { return sigstoreSignedType }
func (pr *prSigstoreSigned) needsSignatures() bool { return true }
func (pr *prSigstoreSigned) alwaysDenies() bool    { return false }

// pemSource is one PEM blob to load: from a file, or inline.
type pemSource struct {
	path   string // JSON path
	file   string
	data   []byte
	inline bool // data, not file, is the source
}

func (s pemSource) read(files *keyFiles) ([]byte, error) {
	if s.inline {
		if s.data == nil {
			return nil, errors.New("null is not a valid PEM datum")
		}
		return s.data, nil
	}
	return files.read(s.file)
}

// sources lists the blobs of a path / paths / data / datas group, as
// containers/image's loadBytesFromConfigSources does (an empty path is "not set").
func sources(path, key string, file string, files []string, data []byte, datas [][]byte) []pemSource {
	var out []pemSource
	switch {
	case file != "":
		out = append(out, pemSource{path: path + "." + key + "Path", file: file})
	case files != nil:
		for i, f := range files {
			out = append(out, pemSource{path: path + "." + key + "Paths" + strictjson.Index(i), file: f})
		}
	case data != nil:
		out = append(out, pemSource{path: path + "." + key + "Data", data: data, inline: true})
	case datas != nil:
		for i, d := range datas {
			out = append(out, pemSource{path: path + "." + key + "Datas" + strictjson.Index(i), data: d, inline: true})
		}
	}
	return out
}

// load reads every key and certificate file and parses them into a sigstore.Trust.
func (pr *prSigstoreSigned) load(path string, files *keyFiles) error {
	t := &sigstore.Trust{}
	for _, s := range sources(path, "key", pr.keyPath, pr.keyPaths, pr.keyData, pr.keyDatas) {
		data, err := s.read(files)
		if err == nil {
			var key any
			key, err = sigstore.ParsePublicKey(data)
			t.PublicKeys = append(t.PublicKeys, key)
		}
		if err != nil {
			return &LoadError{Path: s.path, Err: err}
		}
	}
	for _, s := range sources(path, "rekorPublicKey", pr.rekorKeyPath, pr.rekorKeyPaths, pr.rekorKeyData, pr.rekorKeyDatas) {
		data, err := s.read(files)
		if err == nil {
			key, perr := sigstore.ParseRekorPublicKey(data)
			t.RekorKeys = append(t.RekorKeys, key)
			err = perr
		}
		if err != nil {
			return &LoadError{Path: s.path, Err: err}
		}
	}
	if f := pr.fulcio; f != nil {
		roots, err := loadCertificates(files, sources(path+".fulcio", "ca", f.caPath, nil, f.caData, nil))
		if err != nil {
			return err
		}
		t.Fulcio = &sigstore.Fulcio{Roots: roots, OIDCIssuer: f.oidcIssuer, SubjectEmail: f.subjectEmail}
	}
	if p := pr.pki; p != nil {
		roots, err := loadCertificates(files, sources(path+".pki", "caRoots", p.caRootsPath, nil, p.caRootsData, nil))
		if err != nil {
			return err
		}
		intermediates, err := loadCertificates(files, sources(path+".pki", "caIntermediates", p.caIntermediatesPath, nil, p.caIntermediatesData, nil))
		if err != nil {
			return err
		}
		t.PKI = &sigstore.PKI{Roots: roots, Intermediates: intermediates, SubjectEmail: p.subjectEmail, SubjectHostname: p.subjectHostname}
	}
	pr.trust = t
	return nil
}

func loadCertificates(files *keyFiles, srcs []pemSource) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for _, s := range srcs {
		data, err := s.read(files)
		if err == nil {
			var c []*x509.Certificate
			c, err = sigstore.ParseCertificates(data)
			certs = append(certs, c...)
		}
		if err != nil {
			return nil, &LoadError{Path: s.path, Err: err}
		}
	}
	return certs, nil
}

func (pr *prSigstoreSigned) evaluate(ctx context.Context, ev *evaluation) (outcome, error) {
	sigs, err := ev.signatures(ctx)
	if err != nil {
		return outcome{}, err
	}
	var (
		rejections                           []string
		nonSigstore, nonSignatureAttachments int
	)
	for i, sig := range sigs {
		switch {
		case sig.Format == FormatSigstoreBundle:
			// Not read by containers/image: pullgate's addition (DESIGN.md, difference 6).
			if err := pr.checkBundle(ev, sig); err != nil {
				rejections = append(rejections, signatureLabel(i, sig)+": "+err.Error())
				continue
			}
			return outcome{allowed: true, verified: true, reason: signatureLabel(i, sig) + " is a valid Sigstore bundle"}, nil
		case sig.Format != FormatCosign:
			nonSigstore++
			continue
		case sig.MIMEType != sigstore.MIMETypeSimpleSigning:
			nonSignatureAttachments++
			continue
		}
		if err := pr.check(ev, sig); err != nil {
			rejections = append(rejections, signatureLabel(i, sig)+": "+err.Error())
			continue
		}
		return outcome{allowed: true, verified: true, reason: signatureLabel(i, sig) + " is a valid sigstore signature"}, nil
	}
	skipped := ""
	if nonSigstore != 0 || nonSignatureAttachments != 0 {
		skipped = fmt.Sprintf(" (%d non-sigstore signatures, %d sigstore non-signature attachments)", nonSigstore, nonSignatureAttachments)
	}
	return outcome{reason: summarizeRejections(rejections, skipped)}, nil
}

// check verifies one cosign signature: cryptography and certificates through the
// sigstore package, then the manifest digest and the identity here.
func (pr *prSigstoreSigned) check(ev *evaluation, sig Signature) error {
	if pr.trust == nil {
		return errors.New("the requirement's keys are not loaded")
	}
	claims, err := pr.trust.VerifyAttachment(sig.MIMEType, sig.Data, sig.Annotations, ev.now)
	if err != nil {
		return err
	}
	if err := ev.checkDigest(claims.ManifestDigest); err != nil {
		return err
	}
	if !pr.identity.matches(ev.img.Identity, claims.DockerReference) {
		return fmt.Errorf("signature for identity %q is not accepted (%s)", claims.DockerReference, pr.identity)
	}
	return nil
}

// checkBundle verifies one cosign v3 Sigstore bundle. A bundle signs digests only and names
// no image, so its signed identity is taken to be the repository it was found in (it is
// attached to the image there through the referrers API), without tag: the same name-only
// identity cosign writes into its legacy payloads. Hence, as for those, matchRepository and
// exactRepository can accept it, and the tag-exact matchers cannot.
func (pr *prSigstoreSigned) checkBundle(ev *evaluation, sig Signature) error {
	if pr.trust == nil {
		return errors.New("the requirement's keys are not loaded")
	}
	claims, err := pr.trust.VerifyBundle(sig.Data, ev.now)
	if err != nil {
		return err
	}
	var mismatch error
	matched := false
	for _, d := range claims.Subjects {
		if mismatch = ev.checkDigest(d); mismatch == nil {
			matched = true
			break
		}
	}
	if !matched {
		if mismatch == nil {
			mismatch = errors.New("the bundle signs no sha256 digest")
		}
		return mismatch
	}
	implied := ev.img.Identity.Name()
	if !pr.identity.matches(ev.img.Identity, implied) {
		return fmt.Errorf("a bundle names no image; the repository it was found in, %q, is not accepted (%s)", implied, pr.identity)
	}
	return nil
}
