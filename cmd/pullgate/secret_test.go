package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/internal/server"
	"github.com/pullgate/pullgate/internal/testsupport"
)

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
