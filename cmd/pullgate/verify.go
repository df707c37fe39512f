package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/distribution/reference"

	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/internal/server"
	"github.com/pullgate/pullgate/policy"
	"github.com/pullgate/pullgate/proxy/admission"
	"github.com/pullgate/pullgate/proxy/content"
	"github.com/pullgate/pullgate/proxy/enforce"
)

// evaluateFunc decides on one image the way serve would.
type evaluateFunc func(ctx context.Context, cfg *config.Config, image reference.Named, logger *slog.Logger) (policy.Verdict, error)

// manifestAccept is what verify asks upstream for: every manifest type, as podman does.
// Schema1 is asked for too, so that such an image is refused by name, not missed.
var manifestAccept = []string{
	content.MediaTypeOCIManifest,
	content.MediaTypeDockerManifest,
	content.MediaTypeSchema1Signed,
	content.MediaTypeSchema1,
	content.MediaTypeDockerList,
	content.MediaTypeOCIIndex,
}

// evaluateImage fetches image's manifest from its upstream, finds its signatures and
// evaluates the policy through the same gate serve uses, so that the answer is exactly
// what a pull through pullgate would get (for an index: accepted when it or one of its
// children is).
func evaluateImage(ctx context.Context, cfg *config.Config, image reference.Named, logger *slog.Logger) (policy.Verdict, error) {
	registry := reference.Domain(image)
	if !slices.ContainsFunc(cfg.Upstreams, func(u config.Upstream) bool { return u.Registry == registry }) {
		return policy.Verdict{}, fmt.Errorf("registry %s is not a configured upstream (upstreams: %s)", registry, config.RegistryList(cfg.Upstreams))
	}
	built, err := server.Build(ctx, cfg, logger, server.Options{NoOperations: true})
	if err != nil {
		return policy.Verdict{}, err
	}
	defer built.Close()
	src := built.Source(registry)
	ref := ""
	switch r := image.(type) {
	case reference.Digested:
		ref = r.Digest().String()
	case reference.Tagged:
		ref = r.Tag()
	}
	repo := reference.Path(image)
	m, err := src.Manifest(ctx, repo, ref, manifestAccept)
	if err != nil {
		return policy.Verdict{}, fmt.Errorf("fetching the manifest: %w", err)
	}
	d, err := built.Gate().AdmitManifest(ctx, &admission.ManifestRequest{
		Target:    admission.Target{Registry: registry, Repository: repo, ClientAddr: "pullgate verify"},
		Reference: ref, Digest: m.Digest, MediaType: content.MediaType(m.ContentType), Bytes: m.Bytes,
	})
	if err != nil {
		return policy.Verdict{}, err
	}
	v := policy.Verdict{Accepted: d.Allow, Identity: image.String(), Digest: m.Digest, Reason: d.Reason}
	if detail, ok := d.Detail.(enforce.Detail); ok {
		v.Identity, v.Scope, v.Requirement, v.Reason = detail.Identity, detail.Scope, detail.Requirement, detail.Reason
	}
	return v, nil
}

// runVerify implements `pullgate verify --config FILE IMAGE`: exit 0 when the policy accepts
// the image, 1 when it rejects it, 2 when it cannot decide or the input is wrong.
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer, evaluate evaluateFunc) int {
	fs := newFlagSet("verify", "verify --config FILE IMAGE", stderr)
	configPath := fs.String("config", "", "configuration file (YAML); see config.example.yaml")
	asJSON := fs.Bool("json", false, "print the verdict as one JSON object")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if *configPath == "" {
		fmt.Fprintln(stderr, "pullgate verify: --config FILE is required")
		return exitError
	}
	if len(rest) != 1 {
		fmt.Fprintln(stderr, "pullgate verify: expected exactly one IMAGE, such as docker.io/library/alpine:3.20")
		return exitError
	}
	image, err := parseImage(rest[0])
	if err != nil {
		fmt.Fprintf(stderr, "pullgate verify: %v\n", err)
		return exitError
	}

	cfg, warnings, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "pullgate verify: %v\n", err)
		return exitError
	}
	logger := newLogger(cfg.Log, stderr)
	for _, w := range warnings {
		logger.Warn(w)
	}

	verdict, err := evaluate(ctx, cfg, image, logger)
	if err != nil {
		fmt.Fprintf(stderr, "pullgate verify: %s: %v\n", image, err)
		return exitError
	}
	if *asJSON {
		printVerdictJSON(stdout, image, verdict)
	} else {
		printVerdict(stdout, image, verdict)
	}
	if verdict.Accepted {
		return exitOK
	}
	return exitRejected
}

// parseImage parses a full image reference, normalised as docker does, and adds :latest when
// it has neither tag nor digest, as podman and skopeo do.
func parseImage(s string) (reference.Named, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return nil, fmt.Errorf("IMAGE %q: %w", s, err)
	}
	if _, tagged := named.(reference.Tagged); tagged {
		if _, digested := named.(reference.Digested); digested {
			return nil, fmt.Errorf("IMAGE %q: give a tag or a digest, not both", s)
		}
	}
	return reference.TagNameOnly(named), nil
}

// printVerdict writes the verdict and its reasons.
func printVerdict(w io.Writer, image reference.Named, v policy.Verdict) {
	word := "rejected"
	if v.Accepted {
		word = "accepted"
	}
	identity := v.Identity
	if identity == "" {
		identity = image.String()
	}
	fmt.Fprintf(w, "%s %s\n", word, identity)
	if v.Digest != "" {
		fmt.Fprintf(w, "  digest:      %s\n", v.Digest)
	}
	if v.Scope != "" {
		fmt.Fprintf(w, "  scope:       %s\n", v.Scope)
	}
	if v.Requirement != "" {
		fmt.Fprintf(w, "  requirement: %s\n", v.Requirement)
	}
	if v.Reason != "" {
		fmt.Fprintf(w, "  reason:      %s\n", v.Reason)
	}
}

// printVerdictJSON writes the verdict as one JSON object: the gate's Detail, the fields of
// the decision log line and of a DENIED error's detail.
func printVerdictJSON(w io.Writer, image reference.Named, v policy.Verdict) {
	d := enforce.Detail{Identity: v.Identity, Digest: v.Digest.String(), Verdict: "deny", Scope: v.Scope,
		Requirement: v.Requirement, Reason: v.Reason}
	if d.Identity == "" {
		d.Identity = image.String()
	}
	if v.Accepted {
		d.Verdict = "accept"
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(d)
}
