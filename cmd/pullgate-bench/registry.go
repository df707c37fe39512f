package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// registryConfig is distribution's configuration for the upstream: filesystem storage
// with the in-memory descriptor cache (as distribution's own example config), and quiet
// logs: the binary logs every request twice otherwise (TOOLING.md, Gotchas), which would
// cost the direct side time the proxied side does not pay. The %s before http is for more
// sections (the peer's proxy section, see startDistribution).
const registryConfig = `version: 0.1
log:
  level: warn
  formatter: text
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
  cache:
    blobdescriptor: inmemory
%shttp:
  addr: %q
`

// upstreamCommand is how the upstream registry is started: the -registry binary with
// "serve", or else this very binary in its registry mode (serveRegistryArg).
type upstreamCommand struct {
	bin     string
	arg     string // before the configuration file
	version string
}

// findRegistry returns how to start the upstream registry.
func findRegistry(ctx context.Context, flagPath string) (upstreamCommand, error) {
	if flagPath != "" {
		if _, err := os.Stat(flagPath); err != nil {
			return upstreamCommand{}, fmt.Errorf("-registry: %w", err)
		}
		return upstreamCommand{bin: flagPath, arg: "serve", version: toolVersion(ctx, flagPath, "--version")}, nil
	}
	self, err := os.Executable()
	if err != nil {
		return upstreamCommand{}, err
	}
	return upstreamCommand{bin: self, arg: serveRegistryArg, version: distributionVersion()}, nil
}

// startRegistry starts distribution's registry on a free port with its storage under
// dir and returns the process and its address.
func startRegistry(ctx context.Context, up upstreamCommand, dir string, client *http.Client) (*process, string, error) {
	return startDistribution(ctx, up, dir, "registry", "", client)
}

// startDistribution starts distribution's registry as name (storage <dir>/<name>-data,
// configuration <dir>/<name>.yml, log <dir>/<name>.log) on a free port, with extra (YAML
// sections, "" for none) in its configuration.
func startDistribution(ctx context.Context, up upstreamCommand, dir, name, extra string, client *http.Client) (*process, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	storage := filepath.Join(dir, name+"-data")
	if err := os.MkdirAll(storage, 0o700); err != nil {
		return nil, "", err
	}
	cfgPath := filepath.Join(dir, name+".yml")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, registryConfig, storage, extra, addr), 0o600); err != nil {
		return nil, "", err
	}
	p, err := startServer(ctx, client, name, filepath.Join(dir, name+".log"), addr, up.bin, up.arg, cfgPath)
	if err != nil {
		return nil, "", err
	}
	return p, addr, nil
}

// toolVersion is the first line a binary prints for its version argument, or "unknown".
func toolVersion(ctx context.Context, bin string, args ...string) string {
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
