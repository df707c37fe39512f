package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// upstreamName is the registry name pullgate knows the upstream by: the first component
// of the proxied paths, the policy scope and the signatures' docker-reference.
const upstreamName = "bench.pullgate.test"

// pullgateConfig is the configuration the measured pullgate runs with.
const pullgateConfig = `listen: %q
upstreams:
  - registry: %q
    url: %q
policy:
  path: %q
  registriesDir: %q
log:
  level: %q
  format: text
`

// buildPullgate compiles ./cmd/pullgate of the module the current directory is in.
func buildPullgate(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "pullgate")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/pullgate/pullgate/cmd/pullgate")
	var msg bytes.Buffer
	cmd.Stdout, cmd.Stderr = &msg, &msg
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/pullgate (run the benchmark from inside the pullgate module, "+
			"or pass -pullgate PATH): %w\n%s", err, strings.TrimSpace(msg.String()))
	}
	return out, nil
}

// startPullgate writes a configuration for upstreamAddr with the given policy files (and
// extra, YAML appended: the content section) to <dir>/<name>.yaml and starts bin with it
// on a free port, logging to <dir>/<name>.log.
func startPullgate(ctx context.Context, bin, dir, name, upstreamAddr string, f *trustFiles, logLevel, extra string, client *http.Client) (*process, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	cfg := fmt.Sprintf(pullgateConfig, addr, upstreamName, "http://"+upstreamAddr, f.policy, f.registriesD, strings.ToLower(logLevel)) + extra
	cfgPath := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, "", err
	}
	p, err := startServer(ctx, client, name, filepath.Join(dir, name+".log"), addr, bin, "serve", "--config", cfgPath)
	if err != nil {
		return nil, "", err
	}
	return p, addr, nil
}
