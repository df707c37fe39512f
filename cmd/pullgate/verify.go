package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/distribution/reference"

	"github.com/pullgate/pullgate/policy"
)

// evaluateFunc decides on one image the way serve would.
type evaluateFunc func(ctx context.Context, cfg *Config, image reference.Named, logger *slog.Logger) (policy.Verdict, error)

// errVerifyNotWired is returned by evaluateImage until the policy engine is wired in.
var errVerifyNotWired = errors.New("policy evaluation is not wired in yet; cannot verify images")

// evaluateImage fetches image's manifest from its upstream, finds its signatures and
// evaluates the policy, exactly as serve does for a pull.
func evaluateImage(ctx context.Context, cfg *Config, image reference.Named, logger *slog.Logger) (policy.Verdict, error) {
	return policy.Verdict{}, errVerifyNotWired
}

// runVerify implements `pullgate verify --config FILE IMAGE`: exit 0 when the policy accepts
// the image, 1 when it rejects it, 2 when it cannot decide or the input is wrong.
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer, evaluate evaluateFunc) int {
	fs := newFlagSet("verify", "verify --config FILE IMAGE", stderr)
	configPath := fs.String("config", "", "configuration file (YAML); see config.example.yaml")
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

	cfg, warnings, err := loadConfig(*configPath)
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
	printVerdict(stdout, image, verdict)
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
