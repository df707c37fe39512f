package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/proxy/admission"
)

// SignatureLister supplies the simple-signing signatures (raw OpenPGP messages) stored for
// a manifest digest, found where pullgate's own registries.d says. Each must be a
// signature of that digest (an OpenPGP signed message whose payload names it, parsed but
// not verified): what a lookaside or an upstream returned that is not is left out, so
// that the signature API never relays other bytes. An error means they could not be
// obtained.
type SignatureLister interface {
	SimpleSignatures(ctx context.Context, t admission.Target, d digest.Digest) ([][]byte, error)
}

// extensionSignature is one entry of the signature API's list (SPEC.md 4): the wire key
// is schemaVersion, and only version 2 "atomic" entries are read by clients.
type extensionSignature struct {
	SchemaVersion int    `json:"schemaVersion"`
	Type          string `json:"type"`
	Name          string `json:"name"`
	Content       []byte `json:"content"`
}

// serveSignatures answers GET /extensions/v2/<name>/signatures/<digest>. Signatures are
// served without a policy check: they are public statements that clients verify against
// their own policy, exactly as when read from a lookaside. The lister passes on only
// signatures of d, and its lookup is bounded (sigsource's per-image budget), so the answer
// is too.
func (h *handler) serveSignatures(w http.ResponseWriter, r *http.Request, rt route) error {
	if h.signatures == nil {
		return &Error{Code: errcode.ErrorCodeUnsupported, Status: http.StatusNotFound,
			Message: "the signature API extension is not enabled"}
	}
	d := digest.Digest(rt.ref)
	sigs, err := h.signatures.SimpleSignatures(r.Context(), target(r, rt), d)
	if err != nil {
		return signatureError(err)
	}
	list := struct {
		Signatures []extensionSignature `json:"signatures"`
	}{Signatures: make([]extensionSignature, 0, len(sigs))}
	for _, s := range sigs {
		// The name must be unique per image; clients ignore it when reading.
		sum := sha256.Sum256(s)
		list.Signatures = append(list.Signatures, extensionSignature{
			SchemaVersion: 2, Type: "atomic", Name: d.String() + "@" + hex.EncodeToString(sum[:16]), Content: s,
		})
	}
	body, err := json.Marshal(list)
	if err != nil {
		return err
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
	return nil
}
