package sigstore

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"slices"
	"strings"
	"time"

	"github.com/pullgate/pullgate/policy/payload"
)

// VerifyAttachment verifies one layer of a cosign .sig attachment: mimeType must be
// MIMETypeSimpleSigning, the signature and certificates come from annotations, now is the
// time for PKI checks. It returns the parsed payload (type "cosign container image
// signature"), whose digest and identity the caller must still check.
//
// It follows signature/policy_eval_sigstore.go of containers/image (SPEC.md 5.4). Errors
// wrap ErrRejected (and ErrNotSignatureLayer for another media type), or ErrInvalidTrust.
func (t *Trust) VerifyAttachment(mimeType string, layer []byte, annotations map[string]string, now time.Time) (payload.Untrusted, error) {
	if mimeType != MIMETypeSimpleSigning {
		return payload.Untrusted{}, rejectf("%w: media type %q", ErrNotSignatureLayer, mimeType)
	}
	if err := t.validate(); err != nil {
		return payload.Untrusted{}, err
	}
	b64Sig, ok := annotations[AnnotationSignature]
	if !ok {
		return payload.Untrusted{}, rejectf("missing %s annotation", AnnotationSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(b64Sig)
	if err != nil {
		return payload.Untrusted{}, rejectf("invalid base64 in the %s annotation: %w", AnnotationSignature, err)
	}
	candidates, err := t.attachmentCandidates(layer, sig, annotations, now)
	if err != nil {
		return payload.Untrusted{}, err
	}
	if err := verifyWithCandidates(candidates, func(key crypto.PublicKey) error {
		return verifyMessage(key, hashSHA256, layer, sig)
	}); err != nil {
		return payload.Untrusted{}, err
	}
	claims, err := payload.Parse(layer, payload.Options{Type: payload.TypeCosign, AllowNullOptional: true})
	if err != nil {
		return payload.Untrusted{}, rejectf("%w", err)
	}
	return claims, nil
}

// attachmentCandidates returns the keys the layer's signature may be verified with, after
// the Rekor and certificate checks that select them.
func (t *Trust) attachmentCandidates(layer, sig []byte, annotations map[string]string, now time.Time) ([]crypto.PublicKey, error) {
	payloadSHA256 := sha256.Sum256(layer)
	switch {
	case len(t.PublicKeys) > 0 && len(t.RekorKeys) == 0:
		return t.PublicKeys, nil

	case len(t.PublicKeys) > 0:
		set, ok := annotations[AnnotationBundle]
		if !ok {
			return nil, rejectf("missing %s annotation (a Rekor public key is configured)", AnnotationBundle)
		}
		entry, err := verifySETAnnotation(t.RekorKeys, set)
		if err != nil {
			return nil, err
		}
		// The entry records one key: the first configured key it matches is the only candidate.
		candidates, mismatches, err := firstBoundKey(t.PublicKeys, func(der []byte) error {
			return checkRekorBody(entry.body, logBinding{kind: kindHashedRekord, verifierDER: der, signature: sig, dataSHA256: payloadSHA256[:]})
		})
		if err != nil || candidates != nil {
			return candidates, err
		}
		if len(mismatches) == 1 {
			return nil, rejectf("%s", mismatches[0])
		}
		return nil, rejectf("the Rekor entry matches none of the %d configured public keys: %s", len(mismatches), joinDistinct(mismatches))

	case t.Fulcio != nil:
		set, ok := annotations[AnnotationBundle]
		if !ok {
			return nil, rejectf("missing %s annotation (Fulcio requires a Rekor entry)", AnnotationBundle)
		}
		certPEM, ok := annotations[AnnotationCertificate]
		if !ok {
			return nil, rejectf("missing %s annotation", AnnotationCertificate)
		}
		certDER, err := singlePEMBlock([]byte(certPEM), AnnotationCertificate+" annotation")
		if err != nil {
			return nil, err
		}
		entry, err := verifySETAnnotation(t.RekorKeys, set)
		if err != nil {
			return nil, err
		}
		if err := checkRekorBody(entry.body, logBinding{kind: kindHashedRekord, verifierDER: certDER, signature: sig, dataSHA256: payloadSHA256[:]}); err != nil {
			return nil, err
		}
		leaf, intermediates, err := attachmentCertificates(certPEM, annotations)
		if err != nil {
			return nil, err
		}
		return oneKey(t.Fulcio.verifyLeaf(leaf, intermediates, entry.integratedTime))

	default: // t.PKI != nil, as validate ensured
		certPEM, ok := annotations[AnnotationCertificate]
		if !ok {
			return nil, rejectf("missing %s annotation", AnnotationCertificate)
		}
		leaf, intermediates, err := attachmentCertificates(certPEM, annotations)
		if err != nil {
			return nil, err
		}
		return oneKey(t.PKI.verifyLeaf(leaf, intermediates, now))
	}
}

// attachmentCertificates parses the certificate annotation and the intermediates of the
// optional chain annotation.
func attachmentCertificates(certPEM string, annotations map[string]string) (leaf *x509.Certificate, intermediates []*x509.Certificate, err error) {
	intermediates, err = chainIntermediates([]byte(annotations[AnnotationChain]))
	if err != nil {
		return nil, nil, err
	}
	leaf, err = parseLeafPEM([]byte(certPEM))
	if err != nil {
		return nil, nil, err
	}
	return leaf, intermediates, nil
}

// joinDistinct joins reasons for a message, each distinct reason once, in order.
func joinDistinct(reasons []string) string {
	var distinct []string
	for _, r := range reasons {
		if !slices.Contains(distinct, r) {
			distinct = append(distinct, r)
		}
	}
	return strings.Join(distinct, "; ")
}
