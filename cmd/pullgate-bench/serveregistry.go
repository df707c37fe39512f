package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // the upstream's storage
	"github.com/sirupsen/logrus"
)

// serveRegistryArg makes this binary run distribution's registry instead of the
// benchmark: the upstream is then a separate process built from the same distribution
// module pullgate's tests use, with no registry binary to install.
const serveRegistryArg = "__serve-registry"

// serveRegistry runs distribution's registry with the configuration file at path until
// SIGTERM or SIGINT; it returns the exit status.
func serveRegistry(path string, stderr io.Writer) int {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(stderr, "registry: %v\n", err)
		return exitFailed
	}
	cfg, err := configuration.Parse(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(stderr, "registry: %v\n", err)
		return exitFailed
	}
	// distribution logs through logrus' standard logger; warnings only, as the config says.
	logrus.SetLevel(logrus.WarnLevel)
	logrus.SetOutput(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Addr: cfg.HTTP.Addr, Handler: handlers.NewApp(ctx, cfg), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	select {
	case err := <-served:
		fmt.Fprintf(stderr, "registry: %v\n", err)
		return exitFailed
	case <-ctx.Done():
		_ = srv.Shutdown(context.Background())
		return exitOK
	}
}

// distributionVersion is the version of the distribution module linked in.
func distributionVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "github.com/distribution/distribution/v3" {
				return "distribution's registry " + m.Version + " (served by pullgate-bench in its own process)"
			}
		}
	}
	return "distribution's registry (served by pullgate-bench in its own process)"
}
