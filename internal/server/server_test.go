package server

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/proxy/gatetest"
)

// TestBuildInjectedGate: gates from Options.NewGate replace the policy gate, and a gate
// without a reload says so instead of pretending to reload.
func TestBuildInjectedGate(t *testing.T) {
	cfg, _, err := config.Load(testsupport.WriteConfig(t, testsupport.GoodConfig))
	if err != nil {
		t.Fatal(err)
	}
	allow := func(context.Context, *config.Config, []Upstream, *slog.Logger) (*Gates, error) {
		return &Gates{Gate: gatetest.AllowAll{}}, nil
	}
	s, err := Build(context.Background(), cfg, slog.New(slog.DiscardHandler), Options{NewGate: allow})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Handler == nil || s.Gate() == nil {
		t.Fatal("no handler or gate")
	}
	if s.CanReload() || s.PolicyGate() != nil || s.Finder() != nil {
		t.Errorf("injected gates: CanReload %v, PolicyGate %v, Finder %v", s.CanReload(), s.PolicyGate(), s.Finder())
	}
	if _, err := s.Reload(context.Background()); !errors.Is(err, ErrCannotReload) {
		t.Errorf("Reload = %v, want ErrCannotReload", err)
	}
	if s.Source("docker.io") == nil || s.Source("127.0.0.1:5001") == nil || s.Source("quay.io") != nil {
		t.Errorf("Source does not follow the configured upstreams")
	}
	if got := len(s.Upstreams()); got != 2 {
		t.Errorf("%d upstreams, want 2", got)
	}
}

// TestBuildPolicyGate: the default gates are the policy gate, which can reload.
func TestBuildPolicyGate(t *testing.T) {
	cfg, _, err := config.Load(testsupport.WriteConfig(t, testsupport.GoodConfig))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Build(context.Background(), cfg, slog.New(slog.DiscardHandler), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.CanReload() || s.PolicyGate() == nil || s.Finder() == nil {
		t.Fatalf("policy gates: CanReload %v, PolicyGate %v, Finder %v", s.CanReload(), s.PolicyGate(), s.Finder())
	}
	commit, err := s.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	commit()
}
