package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const (
	// shutdownTimeout bounds the wait for in-flight requests after SIGINT/SIGTERM; a pull of
	// a large layer that has not finished by then is cut off.
	shutdownTimeout = 30 * time.Second
	// readHeaderTimeout bounds how long a client may take to send request headers, so idle
	// half-open connections cannot pile up. There is no total write timeout (blobs can be
	// large and slow clients are legitimate): the handler puts a deadline on every write
	// instead (clientTimeouts.writeStall).
	readHeaderTimeout = 10 * time.Second
	// idleTimeout closes keep-alive connections nobody uses.
	idleTimeout = 2 * time.Minute
)

// runServe implements `pullgate serve --config FILE`; newGate builds the enforcement gate.
func runServe(ctx context.Context, args []string, stderr io.Writer, newGate gateFactory) int {
	fs := newFlagSet("serve", "serve --config FILE", stderr)
	configPath := fs.String("config", "", "configuration file (YAML); see config.example.yaml")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "pullgate serve: unexpected arguments %q\n", rest)
		return exitError
	}
	if *configPath == "" {
		fmt.Fprintln(stderr, "pullgate serve: --config FILE is required")
		return exitError
	}

	cfg, warnings, err := loadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "pullgate serve: %v\n", err)
		return exitError
	}
	logger := newLogger(cfg.Log, stderr)
	for _, w := range warnings {
		logger.Warn(w)
	}

	// From here on, problems are reported through the configured logger (stderr).
	handler, reloadGates, err := buildHandler(ctx, cfg, logger, newGate)
	if err != nil {
		logger.Error("failed to start", "err", err)
		return exitError
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		logger.Error("failed to listen", "listen", cfg.Listen, "err", err)
		return exitError
	}
	srv := newHTTPServer(ctx, handler, logger)
	logger.Info("pullgate listening", "addr", ln.Addr().String(), "config", cfg.File,
		"upstreams", registryList(cfg.Upstreams), "defaultUpstream", cfg.DefaultUpstream)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := func() { reloadPolicy(ctx, cfg, reloadGates, logger) }
	if err := serveUntilDone(ctx, srv, ln, logger, hup, reload); err != nil {
		logger.Error("server failed", "err", err)
		return exitRejected
	}
	logger.Info("pullgate stopped")
	return exitOK
}

// newHTTPServer returns the server for handler. Requests get a context that is not cancelled
// when shutdown starts, so that Shutdown can let them finish.
func newHTTPServer(ctx context.Context, handler http.Handler, logger *slog.Logger) *http.Server {
	base := context.WithoutCancel(ctx)
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
}

// serveUntilDone serves on ln until ctx ends, then shuts down gracefully: no new connections,
// in-flight requests get shutdownTimeout to finish. Each value on hup (SIGHUP) calls reload.
// It returns nil after a clean shutdown, or the error that stopped the server.
func serveUntilDone(ctx context.Context, srv *http.Server, ln net.Listener, logger *slog.Logger, hup <-chan os.Signal, reload func()) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	for {
		select {
		case err := <-served:
			return fmt.Errorf("serving: %w", err)
		case <-hup:
			reload()
		case <-ctx.Done():
			logger.Info("shutting down", "timeout", shutdownTimeout.String())
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				srv.Close()
				return fmt.Errorf("graceful shutdown: %w", err)
			}
			if err := <-served; !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serving: %w", err)
			}
			return nil
		}
	}
}

// reloadPolicy is called on SIGHUP: it re-reads the policy file (and every key file it
// names) and registries.d, as named in the configuration read at start-up. A policy that
// does not load is refused and the running one stays in force. The rest of the
// configuration (listen address, upstreams) needs a restart.
func reloadPolicy(ctx context.Context, cfg *Config, reload func(context.Context) error, logger *slog.Logger) {
	if reload == nil {
		logger.WarnContext(ctx, "reload requested (SIGHUP) but this gate cannot reload; restart pullgate to apply changes", "config", cfg.File)
		return
	}
	if err := reload(ctx); err != nil {
		logger.ErrorContext(ctx, "failed to reload the policy; the previous policy stays in force", "policy", cfg.Policy.Path, "err", err)
		return
	}
	logger.InfoContext(ctx, "policy reloaded", "policy", cfg.Policy.Path, "registriesDir", cfg.Policy.RegistriesDir)
}
