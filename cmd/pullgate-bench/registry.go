package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// registryConfig is distribution's configuration for the upstream: filesystem storage
// with the in-memory descriptor cache (as distribution's own example config), and quiet
// logs: the binary logs every request twice otherwise (TOOLING.md, Gotchas), which would
// cost the direct side time the proxied side does not pay.
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
http:
  addr: %q
`

// findRegistry returns the registry binary: the flag's, else the one
// hack/install-test-tools.sh installs in $(go env GOBIN) or $(go env GOPATH)/bin.
func findRegistry(ctx context.Context, flagPath string) (string, error) {
	if flagPath != "" {
		if _, err := os.Stat(flagPath); err != nil {
			return "", fmt.Errorf("-registry: %w", err)
		}
		return flagPath, nil
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOBIN", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOBIN GOPATH: %w", err)
	}
	// One line per variable, in order; an unset GOBIN is an empty line.
	lines := strings.Split(string(out), "\n")
	var dirs []string
	if len(lines) > 0 && strings.TrimSpace(lines[0]) != "" {
		dirs = append(dirs, strings.TrimSpace(lines[0]))
	}
	if len(lines) > 1 {
		for _, p := range filepath.SplitList(strings.TrimSpace(lines[1])) {
			dirs = append(dirs, filepath.Join(p, "bin"))
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, "registry")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("distribution's registry binary was not found in %s: run hack/install-test-tools.sh "+
		"(it installs registry v3.1.2), or pass -registry PATH", strings.Join(dirs, ", "))
}

// startRegistry starts distribution's registry on a free port with its storage under
// dir and returns the process and its address.
func startRegistry(ctx context.Context, bin, dir string, client *http.Client) (*process, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	storage := filepath.Join(dir, "registry-data")
	if err := os.MkdirAll(storage, 0o700); err != nil {
		return nil, "", err
	}
	cfgPath := filepath.Join(dir, "registry.yml")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, registryConfig, storage, addr), 0o600); err != nil {
		return nil, "", err
	}
	p, err := startProcess("registry", filepath.Join(dir, "registry.log"), bin, "serve", cfgPath)
	if err != nil {
		return nil, "", err
	}
	if err := p.waitReady(ctx, client, "http://"+addr+"/v2/"); err != nil {
		p.stop()
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
