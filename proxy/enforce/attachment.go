package enforce

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/proxy/admission"
	"github.com/pullgate/pullgate/proxy/content"
	"github.com/pullgate/pullgate/proxy/verify"
)

// BlobReader reads small blobs from an upstream, so that the gate can check what a
// signature attachment's layers and config really are before serving them without a
// policy check. UpstreamBlobs implements it.
type BlobReader interface {
	// SmallBlob returns blob d of registry/repository, which must be exactly size bytes
	// and hash to d. A missing blob is an error for which content.IsNotFound is true.
	SmallBlob(ctx context.Context, registry, repository string, d digest.Digest, size int64) ([]byte, error)
}

// UpstreamBlobs is a BlobReader over the upstreams' blob sources, by registry name.
type UpstreamBlobs map[string]content.BlobSource

// SmallBlob implements BlobReader: the bytes are read through a verifying reader, never
// more than size of them.
func (u UpstreamBlobs) SmallBlob(ctx context.Context, registry, repository string, d digest.Digest, size int64) ([]byte, error) {
	src, ok := u[registry]
	if !ok {
		return nil, fmt.Errorf("enforce: no upstream %s", registry)
	}
	b, err := src.Blob(ctx, repository, d)
	if err != nil {
		return nil, err
	}
	vr, err := verify.NewReader(b.Body, d, size)
	if err != nil {
		b.Body.Close()
		return nil, err
	}
	defer vr.Close()
	data, err := io.ReadAll(vr)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	return data, nil
}

// attachmentKind is what kind of signature attachment a manifest claims to be.
type attachmentKind string

const (
	attachmentSig       attachmentKind = "cosign signature (.sig)"
	attachmentAtt       attachmentKind = "cosign attestation (.att)"
	attachmentReferrer  attachmentKind = "referrer"
	attachmentReferrers attachmentKind = "referrers tag index"
)

// emptyDescriptorDigest is the digest of the OCI empty descriptor's two bytes "{}".
var emptyDescriptorDigest = digest.FromString("{}")

// layerCheck says whether a layer's bytes are the JSON document its media type promises.
type layerCheck func([]byte) error

// attachmentLayers is, per attachment kind, the layer media types it may hold and the check
// of each one's bytes. Everything else makes the manifest an image, evaluated by the policy.
var attachmentLayers = map[attachmentKind]map[string]layerCheck{
	attachmentSig: {content.MediaTypeSimpleSigning: checkSimpleSigning},
	attachmentAtt: {content.MediaTypeDSSE: checkDSSE},
	attachmentReferrer: {
		content.MediaTypeSigstoreBundle01: checkSigstoreBundle,
		content.MediaTypeSigstoreBundle02: checkSigstoreBundle,
		content.MediaTypeSigstoreBundle03: checkSigstoreBundle,
		content.MediaTypeSigstoreBundleV3: checkSigstoreBundle,
		content.MediaTypeDSSE:             checkDSSE,
		content.MediaTypeInToto:           checkInToto,
	},
}

// cosignTag is a cosign attachment tag: sha256-<hex>.sig or .att; referrersTag the OCI
// referrers tag schema's sha256-<hex>.
var (
	cosignTag    = regexp.MustCompile(`^sha256-([0-9a-f]{64})\.(sig|att)$`)
	referrersTag = regexp.MustCompile(`^sha256-([0-9a-f]{64})$`)
)

// attachment is what a manifest claims as a signature attachment.
type attachment struct {
	kind    attachmentKind
	subject digest.Digest
}

// claimedAttachment returns what the request claims to be: a cosign attachment by its tag,
// a referrer fetched by digest with a subject, or the referrers tag index. ok is false for
// everything else, which is an image.
func claimedAttachment(ref string, p parsedManifest) (attachment, bool) {
	byDigest := digest.Digest(ref).Validate() == nil
	switch {
	case p.kind == kindIndex:
		if m := referrersTag.FindStringSubmatch(ref); m != nil && p.childrenAreArtifacts {
			return attachment{attachmentReferrers, digest.NewDigestFromEncoded(digest.SHA256, m[1])}, true
		}
	case p.config == nil: // not an OCI or Docker image manifest
	case byDigest && p.subject != "":
		return attachment{attachmentReferrer, p.subject}, true
	default:
		if m := cosignTag.FindStringSubmatch(ref); m != nil {
			kind := attachmentSig
			if m[2] == "att" {
				kind = attachmentAtt
			}
			return attachment{kind, digest.NewDigestFromEncoded(digest.SHA256, m[1])}, true
		}
	}
	return attachment{}, false
}

// notAttachmentError says why a claimed attachment is judged an image.
type notAttachmentError struct{ reason string }

func (e *notAttachmentError) Error() string { return e.reason }

func notAttachment(format string, args ...any) error {
	return &notAttachmentError{fmt.Sprintf(format, args...)}
}

func isNotAttachment(err error) bool {
	var n *notAttachmentError
	return errors.As(err, &n)
}

// checkAttachmentShape checks what the manifest says of its blobs: each layer of a type
// the kind allows and of signature size, and a config that cannot be run (the OCI empty
// descriptor, or a small image config, whose bytes are then read). It returns the blobs
// to read, with the check of each.
func checkAttachmentShape(a attachment, p parsedManifest) ([]blobCheck, error) {
	if a.kind == attachmentReferrers {
		return nil, nil
	}
	if len(p.layers) == 0 || len(p.layers) > maxAttachmentLayers {
		return nil, notAttachment("%d layers (1 to %d)", len(p.layers), maxAttachmentLayers)
	}
	types := attachmentLayers[a.kind]
	var checks []blobCheck
	var total int64
	for i, l := range p.layers {
		check, ok := types[content.Normalise(l.MediaType)]
		if !ok {
			return nil, notAttachment("layer %d has media type %q, which a %s does not hold", i, l.MediaType, a.kind)
		}
		if l.Size <= 0 || l.Size > maxAttachmentBlobSize {
			return nil, notAttachment("layer %d is %d bytes (1 to %d)", i, l.Size, maxAttachmentBlobSize)
		}
		total += l.Size
		checks = append(checks, blobCheck{desc: l, check: check})
	}
	c := *p.config
	switch content.Normalise(c.MediaType) {
	case content.MediaTypeEmpty:
		if c.Digest != emptyDescriptorDigest || c.Size != 2 {
			return nil, notAttachment("config claims the empty type but is not {} (%s, %d bytes)", c.Digest, c.Size)
		}
	case content.MediaTypeOCIConfig, content.MediaTypeDockerConfig:
		// cosign writes an image config naming no platform; anything else may be run.
		if c.Size <= 0 || c.Size > maxAttachmentConfigSize {
			return nil, notAttachment("config is %d bytes (1 to %d)", c.Size, maxAttachmentConfigSize)
		}
		total += c.Size
		checks = append(checks, blobCheck{desc: c, check: checkPlatformlessConfig})
	default:
		return nil, notAttachment("config has media type %q", c.MediaType)
	}
	if total > maxAttachmentBytes {
		return nil, notAttachment("its blobs are %d bytes in all (at most %d)", total, maxAttachmentBytes)
	}
	return checks, nil
}

// blobCheck is one blob of an attachment and the check of its bytes.
type blobCheck struct {
	desc  descriptor
	check layerCheck
}

// jsonObject decodes data, which must be one JSON object, into v.
func jsonObject(data []byte, v any) error {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return errors.New("not a JSON object")
	}
	return json.Unmarshal(data, v)
}

// checkSimpleSigning: a simple signing payload names a manifest digest and a type.
func checkSimpleSigning(data []byte) error {
	var p struct {
		Critical *struct {
			Type  string `json:"type"`
			Image struct {
				Digest string `json:"docker-manifest-digest"`
			} `json:"image"`
		} `json:"critical"`
	}
	if err := jsonObject(data, &p); err != nil {
		return err
	}
	if p.Critical == nil || p.Critical.Type == "" || p.Critical.Image.Digest == "" {
		return errors.New("not a simple signing payload (no critical.type and critical.image.docker-manifest-digest)")
	}
	return nil
}

// checkDSSE: a DSSE envelope has a payload type, a payload and a list of signatures.
func checkDSSE(data []byte) error {
	var e struct {
		PayloadType *string           `json:"payloadType"`
		Payload     *string           `json:"payload"`
		Signatures  []json.RawMessage `json:"signatures"`
	}
	if err := jsonObject(data, &e); err != nil {
		return err
	}
	if e.PayloadType == nil || e.Payload == nil || e.Signatures == nil {
		return errors.New("not a DSSE envelope (no payloadType, payload and signatures)")
	}
	return nil
}

// checkInToto: an in-toto statement has a _type.
func checkInToto(data []byte) error {
	var s struct {
		Type string `json:"_type"`
	}
	if err := jsonObject(data, &s); err != nil {
		return err
	}
	if s.Type == "" {
		return errors.New("not an in-toto statement (no _type)")
	}
	return nil
}

// checkSigstoreBundle: a Sigstore bundle names its media type and carries verification
// material.
func checkSigstoreBundle(data []byte) error {
	var b struct {
		MediaType            string          `json:"mediaType"`
		VerificationMaterial json.RawMessage `json:"verificationMaterial"`
	}
	if err := jsonObject(data, &b); err != nil {
		return err
	}
	if !strings.HasPrefix(b.MediaType, "application/vnd.dev.sigstore.bundle") || len(b.VerificationMaterial) == 0 {
		return errors.New("not a Sigstore bundle (no bundle mediaType and verificationMaterial)")
	}
	return nil
}

// checkPlatformlessConfig: the image config cosign writes names no OS or architecture, so
// no runtime picks it to run; an image's config (a denied image's included) names both.
func checkPlatformlessConfig(data []byte) error {
	var c struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	}
	if err := jsonObject(data, &c); err != nil {
		return err
	}
	if c.OS != "" || c.Architecture != "" {
		return fmt.Errorf("the config names a platform (%s/%s): it is an image's", c.OS, c.Architecture)
	}
	return nil
}

// checkAttachmentBlobs reads each blob and checks its bytes. A blob that is missing or
// fails its check makes the manifest an image (a *notAttachmentError); one that could not be
// read is another error (the decision is indeterminate).
func checkAttachmentBlobs(ctx context.Context, br BlobReader, t admission.Target, checks []blobCheck) error {
	for _, c := range checks {
		data, err := br.SmallBlob(ctx, t.Registry, t.Repository, c.desc.Digest, c.desc.Size)
		if err != nil {
			if content.IsNotFound(err) || errors.Is(err, verify.ErrDigestMismatch) || errors.Is(err, verify.ErrSizeMismatch) {
				return notAttachment("blob %s: %v", c.desc.Digest, err)
			}
			return fmt.Errorf("reading blob %s of a signature attachment: %w", c.desc.Digest, err)
		}
		if err := c.check(data); err != nil {
			return notAttachment("blob %s (%s): %v", c.desc.Digest, c.desc.MediaType, err)
		}
	}
	return nil
}

// attachmentCheckKey names the content check of one attachment of one kind.
type attachmentCheckKey struct {
	digest digest.Digest
	kind   attachmentKind
}

// checkAttachment reads and checks an attachment's blobs once for all concurrent callers,
// caching the result by the attachment's digest (the check depends on its bytes alone).
// It returns why the blobs are not an attachment's ("" when they are), or an error when
// they could not be read.
func (g *Gate) checkAttachment(ctx context.Context, t admission.Target, d digest.Digest, kind attachmentKind, checks []blobCheck) (string, error) {
	key := attachmentCheckKey{d, kind}
	if reason, ok := g.attachments.Get(key); ok {
		return reason, nil
	}
	reason, _, err := g.attachmentChecks.Do(ctx, d.String()+"\x00"+string(kind), func(ctx context.Context) (string, error) {
		select {
		case g.attachmentReads <- struct{}{}:
			defer func() { <-g.attachmentReads }()
		case <-ctx.Done():
			return "", fmt.Errorf("waiting to read the blobs of signature attachment %s: %w", d, ctx.Err())
		}
		err := checkAttachmentBlobs(ctx, g.blobReader, t, checks)
		if err != nil && !isNotAttachment(err) {
			return "", err
		}
		reason := ""
		if err != nil {
			reason = err.Error()
		}
		g.attachments.Add(key, reason, admissionTTL)
		return reason, nil
	})
	return reason, err
}
