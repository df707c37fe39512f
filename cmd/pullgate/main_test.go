package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distribution/reference"

	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/internal/server"
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
	testsupport.WriteFile(t, filepath.Join(filepath.Dir(badPolicy), "policy.json"), []byte(`{"default":[]}`))
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

// TestPasswordNeverPrinted loads configurations holding a password in every way a mistake
// can surface it, and checks that the value appears in no message, no formatting of the
// configuration and no log line.
func TestPasswordNeverPrinted(t *testing.T) {
	const secret = "hunter2-do-not-print"
	bad := []struct {
		name   string
		config string
		env    map[string]string
	}{
		{"other problems in the entry", "upstreams:\n  - registry: Docker.io\n    url: ftp://x\n    password: " + secret + "\n    usr: x\npolicy:\n  path: nope\n", nil},
		{"password of the wrong type", "upstreams:\n  - registry: docker.io\n    url: https://r.example\n    username: u\n    password: [" + secret + "]\npolicy:\n  path: ./policy.json\n", nil},
		{"password as a mapping", "upstreams:\n  - registry: docker.io\n    url: https://r.example\n    username: u\n    password: {" + secret + ": 1}\npolicy:\n  path: ./policy.json\n", nil},
		{"credentials in the url", "upstreams:\n  - registry: docker.io\n    url: https://u:" + secret + "@r.example/path\npolicy:\n  path: ./policy.json\n", nil},
		{"credentials in a bad url", "upstreams:\n  - registry: docker.io\n    url: ftp://u:" + secret + "@r.example\npolicy:\n  path: ./policy.json\n", nil},
		{"password from the environment", testsupport.GoodConfig, map[string]string{"PULLGATE_UPSTREAMS_0_PASSWORD": secret, "PULLGATE_UPSTREAMS_0_DOCKERCONFIG": "nope.json"}},
		{"password in an upstreams variable", testsupport.GoodConfig, map[string]string{"PULLGATE_UPSTREAMS": `[{"registry": "docker.io", "url": "x", "password": "` + secret + `", "typo": 1}]`}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			path := testsupport.WriteConfig(t, tt.config)
			_, _, err := config.Load(path)
			if err == nil {
				t.Fatal("Load accepted a bad configuration")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the password:\n%s", err)
			}
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), nil, []string{"serve", "--config", path}, &stdout, &stderr); code != exitError {
				t.Errorf("serve exit code = %d, want %d", code, exitError)
			}
			if strings.Contains(stderr.String()+stdout.String(), secret) {
				t.Errorf("serve printed the password:\n%s", stderr.String())
			}
		})
	}

	t.Run("good configuration", func(t *testing.T) {
		path := testsupport.WriteConfig(t, "listen: 127.0.0.1:0\nupstreams:\n  - registry: docker.io\n    url: https://r.example\n    username: u\n    password: "+secret+"\npolicy:\n  path: ./policy.json\n")
		cfg, _, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Upstreams[0].Password.Reveal() != secret {
			t.Fatalf("password not loaded")
		}
		var logs bytes.Buffer
		for _, h := range []slog.Handler{slog.NewJSONHandler(&logs, nil), slog.NewTextHandler(&logs, nil)} {
			slog.New(h).Info("config", "config", cfg, "upstream", cfg.Upstreams[0], "password", cfg.Upstreams[0].Password)
		}
		for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
			fmt.Fprintf(&logs, format+"\n", cfg)
			fmt.Fprintf(&logs, format+"\n", cfg.Upstreams)
		}
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the password was printed:\n%s", logs.String())
		}
		if !strings.Contains(logs.String(), "[redacted]") {
			t.Errorf("the password is not marked as redacted:\n%s", logs.String())
		}
		var stdout, stderr testsupport.LogBuffer
		t.Setenv("PULLGATE_LOG_LEVEL", "debug")
		// serve starts, logs everything it logs at start-up, and is stopped once it listens
		// (a stop during the start-up would end it before it logs all that).
		ctx, cancel := context.WithCancel(context.Background())
		exit := make(chan int, 1)
		go func() { exit <- run(ctx, nil, []string{"serve", "--config", path}, &stdout, &stderr) }()
		for !stderr.Contains("pullgate listening") && len(exit) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		if code := <-exit; code != exitOK {
			t.Errorf("serve exit code = %d, want %d:\n%s", code, exitOK, stderr.String())
		}
		if !strings.Contains(stderr.String(), "pullgate listening") {
			t.Errorf("serve did not start:\n%s", stderr.String())
		}
		if strings.Contains(stderr.String()+stdout.String(), secret) {
			t.Errorf("serve printed the password:\n%s", stderr.String())
		}
		opts, err := server.UpstreamOptions(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if opts[0].Password != secret {
			t.Errorf("upstream.Options.Password = %q, want the configured password", opts[0].Password)
		}
	})
}
