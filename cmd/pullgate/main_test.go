package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distribution/reference"

	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/policy"
)

func runCapture(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), nil, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestRunCommands(t *testing.T) {
	good := testsupport.WriteConfig(t, testsupport.GoodConfig)
	bad := testsupport.WriteConfig(t, "upstreams: []\nlisten: 1\n")
	badPolicy := testsupport.WriteConfig(t, testsupport.GoodConfig)
	if err := os.WriteFile(filepath.Join(filepath.Dir(badPolicy), "policy.json"), []byte(`{"default":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr []string
	}{
		{"no command", nil, exitError, nil, []string{"Usage:", "pullgate serve  --config FILE"}},
		{"unknown command", []string{"proxy"}, exitError, nil, []string{`unknown command "proxy"`, "Usage:"}},
		{"help", []string{"help"}, exitOK, []string{"Usage:", "pullgate verify --config FILE IMAGE"}, nil},
		{"--help", []string{"--help"}, exitOK, []string{"Usage:"}, nil},
		{"version", []string{"version"}, exitOK, []string{"pullgate "}, nil},
		{"version with arguments", []string{"version", "now"}, exitError, nil, []string{"unexpected arguments"}},
		{"serve -h", []string{"serve", "-h"}, exitOK, nil, []string{"Usage: pullgate serve --config FILE", "-config"}},
		{"serve without --config", []string{"serve"}, exitError, nil, []string{"--config FILE is required"}},
		{"serve with an unknown flag", []string{"serve", "--listen", ":1"}, exitError, nil, []string{"flag provided but not defined: -listen"}},
		{"serve with arguments", []string{"serve", "--config", good, "extra"}, exitError, nil, []string{`unexpected arguments ["extra"]`}},
		{"serve with a missing file", []string{"serve", "--config", "/nonexistent/pullgate.yaml"}, exitError, nil, []string{"config file", "no such file"}},
		{"serve with a bad config", []string{"serve", "--config", bad}, exitError, nil, []string{
			"invalid configuration " + bad + " (3 problems)",
			"listen (line 2): expected a string, got an integer",
			"upstreams (line 1): at least one upstream is required",
			"policy.path: required",
		}},
		{"serve refuses a policy that does not load", []string{"serve", "--config", badPolicy}, exitError, nil, []string{"failed to start", "policy.path", "default"}},
		{"verify -h", []string{"verify", "-h"}, exitOK, nil, []string{"Usage: pullgate verify --config FILE IMAGE"}},
		{"verify without --config", []string{"verify", "docker.io/library/alpine:3.20"}, exitError, nil, []string{"--config FILE is required"}},
		{"verify without an image", []string{"verify", "--config", good}, exitError, nil, []string{"expected exactly one IMAGE"}},
		{"verify with two images", []string{"verify", "--config", good, "alpine", "busybox"}, exitError, nil, []string{"expected exactly one IMAGE"}},
		{"verify with a bad image", []string{"verify", "--config", good, "Alpine:3.20"}, exitError, nil, []string{`IMAGE "Alpine:3.20"`}},
		{"verify with a bad config", []string{"verify", "--config", bad, "alpine"}, exitError, nil, []string{"invalid configuration"}},
		{"verify an image of no configured upstream", []string{"verify", "--config", good, "quay.io/org/app:1"}, exitError, nil, []string{"quay.io/org/app:1: registry quay.io is not a configured upstream"}},
		{"verify with a policy that does not load", []string{"verify", "--config", badPolicy, "127.0.0.1:5001/team/app:1"}, exitError, nil, []string{"policy.path"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCapture(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout, stderr)
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func TestVerifyVerdicts(t *testing.T) {
	good := testsupport.WriteConfig(t, testsupport.GoodConfig)
	const dgst = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
	tests := []struct {
		name       string
		args       []string
		verdict    policy.Verdict
		err        error
		wantImage  string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{
			name:      "accepted",
			args:      []string{"--config", good, "docker.io/library/alpine:3.20"},
			verdict:   policy.Verdict{Accepted: true, Identity: "docker.io/library/alpine:3.20", Digest: dgst, Scope: `transports.docker["docker.io/library"]`, Reason: "signed by key ABCD"},
			wantImage: "docker.io/library/alpine:3.20",
			wantCode:  exitOK,
			wantStdout: "accepted docker.io/library/alpine:3.20\n" +
				"  digest:      " + dgst + "\n" +
				"  scope:       transports.docker[\"docker.io/library\"]\n" +
				"  reason:      signed by key ABCD\n",
		},
		{
			name:      "rejected, flags after the image, short name normalised",
			args:      []string{"busybox", "--config", good},
			verdict:   policy.Verdict{Identity: "docker.io/library/busybox:latest", Scope: "default", Requirement: "[0] reject", Reason: "the policy rejects every image in this scope"},
			wantImage: "docker.io/library/busybox:latest",
			wantCode:  exitRejected,
			wantStdout: "rejected docker.io/library/busybox:latest\n" +
				"  scope:       default\n" +
				"  requirement: [0] reject\n" +
				"  reason:      the policy rejects every image in this scope\n",
		},
		{
			name:       "by digest",
			args:       []string{"--config", good, "127.0.0.1:5001/team/app@" + dgst},
			verdict:    policy.Verdict{},
			wantImage:  "127.0.0.1:5001/team/app@" + dgst,
			wantCode:   exitRejected,
			wantStdout: "rejected 127.0.0.1:5001/team/app@" + dgst + "\n",
		},
		{
			name:       "could not decide",
			args:       []string{"--config", good, "docker.io/library/alpine:3.20"},
			err:        errors.Join(policy.ErrIndeterminate, errors.New("lookaside unreachable")),
			wantImage:  "docker.io/library/alpine:3.20",
			wantCode:   exitError,
			wantStderr: "lookaside unreachable",
		},
		{
			name:       "accepted, as JSON",
			args:       []string{"--json", "--config", good, "docker.io/library/alpine:3.20"},
			verdict:    policy.Verdict{Accepted: true, Identity: "docker.io/library/alpine:3.20", Digest: dgst, Scope: "default", Reason: "[0] insecureAcceptAnything: accepted"},
			wantImage:  "docker.io/library/alpine:3.20",
			wantCode:   exitOK,
			wantStdout: `{"identity":"docker.io/library/alpine:3.20","digest":"` + dgst + `","verdict":"accept","scope":"default","reason":"[0] insecureAcceptAnything: accepted"}` + "\n",
		},
		{
			name:       "rejected, as JSON",
			args:       []string{"--config", good, "--json", "busybox"},
			verdict:    policy.Verdict{Identity: "docker.io/library/busybox:latest", Scope: "default", Requirement: "[0] reject", Reason: "rejected by policy"},
			wantImage:  "docker.io/library/busybox:latest",
			wantCode:   exitRejected,
			wantStdout: `{"identity":"docker.io/library/busybox:latest","digest":"","verdict":"deny","scope":"default","requirement":"[0] reject","reason":"rejected by policy"}` + "\n",
		},
		{
			name:       "tag and digest",
			args:       []string{"--config", good, "alpine:3.20@" + dgst},
			wantCode:   exitError,
			wantStderr: "give a tag or a digest, not both",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotImage string
			evaluate := func(_ context.Context, cfg *config.Config, image reference.Named, _ *slog.Logger) (policy.Verdict, error) {
				if cfg.File != good {
					t.Errorf("evaluate got config %s", cfg.File)
				}
				gotImage = image.String()
				return tt.verdict, tt.err
			}
			var stdout, stderr bytes.Buffer
			code := runVerify(context.Background(), tt.args, &stdout, &stderr, evaluate)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d; stderr: %s", code, tt.wantCode, stderr.String())
			}
			if gotImage != tt.wantImage {
				t.Errorf("evaluated %q, want %q", gotImage, tt.wantImage)
			}
			if stdout.String() != tt.wantStdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantStderr, stderr.String())
			}
		})
	}
}

func TestNewLogger(t *testing.T) {
	tests := []struct {
		cfg      config.Log
		wantSome string
		wantNone string
	}{
		{config.Log{Level: "info", Format: "text"}, `level=INFO msg=shown`, "hidden"},
		{config.Log{Level: "DEBUG", Format: "text"}, `level=DEBUG msg=hidden`, "nothing"},
		{config.Log{Level: "warn", Format: "JSON"}, `"level":"WARN","msg":"shown"`, `"msg":"hidden"`},
		{config.Log{Level: "error", Format: "json"}, `"level":"ERROR","msg":"shown"`, `"level":"WARN"`},
	}
	for _, tt := range tests {
		t.Run(tt.cfg.Level+"/"+tt.cfg.Format, func(t *testing.T) {
			var buf bytes.Buffer
			l := newLogger(tt.cfg, &buf)
			level := parseLevel(tt.cfg.Level)
			l.Log(context.Background(), level-4, "hidden")
			l.Log(context.Background(), level, "shown")
			if tt.cfg.Level == "DEBUG" {
				l.Debug("hidden")
			}
			out := buf.String()
			if !strings.Contains(out, tt.wantSome) {
				t.Errorf("output lacks %q:\n%s", tt.wantSome, out)
			}
			if strings.Contains(out, tt.wantNone) {
				t.Errorf("output has %q:\n%s", tt.wantNone, out)
			}
		})
	}
}
