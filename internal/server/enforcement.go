package server

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/policy"
	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/admission"
	"github.com/pullgate/pullgate/proxy/enforce"
	"github.com/pullgate/pullgate/proxy/sigsource"
	"github.com/pullgate/pullgate/proxy/stored"
	"github.com/pullgate/pullgate/proxy/upstream"
)

// enforcement joins the policy engine, the signature sources and the gate.
type enforcement struct {
	cfg        *config.Config
	opts       Options
	registries map[string]sigsource.Registry
	gate       *enforce.Gate
	// finder is replaced on reload (registries.d may have changed); the signature API
	// always asks the current one.
	finder atomic.Pointer[sigsource.Finder]
	// policy is the policy in force, for the files it names (KeyFiles).
	policy atomic.Pointer[policy.Policy]
	log    *slog.Logger
	// ops are the operations' hooks into the gate (metrics, audit, warn scopes).
	ops gateOps
	// content, when it keeps signatures, stands between the gate and every finder.
	content *contentStore
}

// gateOps is what the operations add to the gate: decision observers, warn scopes and
// timing decorators. The zero value adds nothing.
type gateOps struct {
	onDecision enforce.DecisionObserver
	warn       *policy.ScopeSet
	wrapEval   func(enforce.Evaluator) enforce.Evaluator
	wrapFinder func(enforce.Finder) enforce.Finder
}

func (o gateOps) evaluator(e enforce.Evaluator) enforce.Evaluator {
	if o.wrapEval == nil {
		return e
	}
	return o.wrapEval(e)
}

func (o gateOps) finder(f enforce.Finder) enforce.Finder {
	if o.wrapFinder == nil {
		return f
	}
	return o.wrapFinder(f)
}

var (
	_ proxy.SignatureLister = (*enforcement)(nil)
	_ proxy.SignatureLister = (*sigsource.Finder)(nil)
	// Signature lookup reads the upstream clients themselves, never a decorated Source.
	_ sigsource.Registry = (*upstream.Client)(nil)
)

// newEnforcement loads the policy (with every key file it names) and registries.d, and
// builds the enforcing gate.
func newEnforcement(cfg *config.Config, upstreams []Upstream, logger *slog.Logger, opts Options, ops gateOps, content *contentStore) (*enforcement, error) {
	e := &enforcement{cfg: cfg, opts: opts, registries: make(map[string]sigsource.Registry, len(upstreams)), log: logger,
		ops: ops, content: content}
	for _, u := range upstreams {
		e.registries[u.Registry] = u.Client
	}
	pol, finder, err := e.load()
	if err != nil {
		return nil, err
	}
	vc := cfg.Cache.Verdicts
	blobs := enforce.UpstreamBlobs{}
	for name, reg := range e.registries {
		blobs[name] = reg
		if kept := content.offlineBlobs(name); kept != nil {
			// Never contacted: the attachment checks read the kept blobs.
			blobs[name] = kept
		}
	}
	gate, err := enforce.New(enforce.Options{Policy: e.evaluator(pol, true), Finder: e.gateFinder(finder), AcceptTTL: vc.AcceptTTL,
		DenyTTL: vc.DenyTTL, CacheSize: vc.Size, Blobs: blobs, Kept: content.gateKept(), Logger: logger,
		OnDecision: ops.onDecision, Warn: ops.warn})
	if err != nil {
		return nil, err
	}
	e.gate = gate
	e.finder.Store(finder)
	e.policy.Store(pol)
	logger.Info("policy loaded", "policy", cfg.Policy.Path, "registriesDir", cfg.Policy.RegistriesDir,
		"generation", gate.Generation())
	return e, nil
}

// load reads the policy file and registries.d and builds a signature finder over them.
func (e *enforcement) load() (*policy.Policy, *sigsource.Finder, error) {
	pol, err := policy.LoadFile(e.cfg.Policy.Path)
	if err != nil {
		return nil, nil, fmt.Errorf("policy.path: %w", err)
	}
	regd, err := sigsource.LoadRegistriesD(e.cfg.Policy.RegistriesDir)
	if err != nil {
		return nil, nil, fmt.Errorf("policy.registriesDir: %w", err)
	}
	vc := e.cfg.Cache.Verdicts
	lookaside := &sigsource.Lookaside{Logger: e.log, Client: lookasideClient(e.cfg, e.opts)}
	// Found signatures are reused no longer than a denial, so that an image signed after it
	// was denied is accepted as soon as its denial expires.
	finder, err := sigsource.NewFinder(sigsource.FinderOptions{Registries: e.registries, RegistriesD: regd,
		Lookaside: lookaside, CacheTTL: min(vc.AcceptTTL, vc.DenyTTL), CacheSize: vc.Size, Logger: e.log})
	if err != nil {
		return nil, nil, err
	}
	return pol, finder, nil
}

// reload reads the policy and registries.d afresh and returns the function that puts them
// in force; serve calls it only if the read ended in time. When either cannot be loaded
// the running ones stay in force and the error is returned.
func (e *enforcement) reload(ctx context.Context) (func(), error) {
	pol, finder, err := e.load()
	if err != nil {
		return nil, err
	}
	return func() {
		e.gate.Reload(e.evaluator(pol, false), e.gateFinder(finder))
		e.finder.Store(finder)
		e.policy.Store(pol)
	}, nil
}

// evaluator is pol as the gate sees it: timed (metrics), and the first one wrapped by
// Options.WrapPolicy (tests count the evaluations of the policy loaded at start-up).
func (e *enforcement) evaluator(pol *policy.Policy, first bool) enforce.Evaluator {
	eval := e.ops.evaluator(pol)
	if first && e.opts.WrapPolicy != nil {
		eval = e.opts.WrapPolicy(eval)
	}
	return eval
}

// gateFinder is the finder the gate decides with: the signature sources (timed, for the
// metrics), and with a content store the signatures kept with the content behind them.
func (e *enforcement) gateFinder(f *sigsource.Finder) enforce.Finder {
	live := e.ops.finder(f)
	if e.content == nil || e.content.store == nil {
		return live
	}
	sigs := e.content.signatures.Load()
	if sigs == nil {
		sigs = stored.NewSignatures(live, e.content.store, e.content.offline, e.log)
	} else {
		// A reload: the pending lookups carry over.
		sigs = sigs.WithLive(live)
	}
	e.content.signatures.Store(sigs)
	return sigs
}

// SimpleSignatures implements proxy.SignatureLister with the current finder.
// An offline upstream is never asked: the kept signatures answer (imported images).
func (e *enforcement) SimpleSignatures(ctx context.Context, t admission.Target, d digest.Digest) ([][]byte, error) {
	if e.content != nil && e.content.offline[t.Registry] {
		if sigs := e.content.signatures.Load(); sigs != nil {
			found, err := sigs.KeptSimpleSignatures(ctx, t.Registry, t.Repository, d)
			if err != nil {
				return nil, &admission.UnreadableError{Err: err}
			}
			return found, nil
		}
	}
	return e.finder.Load().SimpleSignatures(ctx, t, d)
}
