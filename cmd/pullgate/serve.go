package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/internal/server"
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

// runServe implements `pullgate serve --config FILE`; newGate, when set, builds the gates
// instead of the policy gate (tests).
// Each value on hup is a reload request (SIGHUP), however early it came: one that arrives
// during the start-up is handled once pullgate serves. ctx ending (SIGINT, SIGTERM) stops
// the server, or the start-up.
func runServe(ctx context.Context, args []string, stderr io.Writer, newGate server.GateFactory, hup <-chan struct{}) int {
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

	// The start-up reads files that can block (a FIFO, a hung network file system); a stop
	// request does not wait for it.
	started := make(chan *startedServer, 1)
	go func() { started <- startServer(ctx, *configPath, stderr, newGate) }()
	var s *startedServer
	select {
	case s = <-started:
	case <-ctx.Done():
		fmt.Fprintln(stderr, "pullgate serve: stopped during start-up")
		go func() {
			if s := <-started; s.ln != nil {
				s.ln.Close()
			}
		}()
		return exitOK
	}
	if s.code != exitOK {
		return s.code
	}
	if err := serveUntilDone(ctx, s.srv, s.ln, s.logger, hup, s.reloads); err != nil {
		s.logger.Error("server failed", "err", err)
		return exitRejected
	}
	s.logger.Info("pullgate stopped")
	return exitOK
}

// startedServer is what startServer produced: a listening server, or the exit code of a
// start-up that failed (then the other fields may be nil).
type startedServer struct {
	code    int
	logger  *slog.Logger
	srv     *http.Server
	ln      net.Listener
	reloads *reloader
}

// startServer reads the configuration, builds the handler and listens.
func startServer(ctx context.Context, configPath string, stderr io.Writer, newGate server.GateFactory) *startedServer {
	cfg, warnings, err := config.Load(configPath)
	if err != nil {
		fmt.Fprintf(stderr, "pullgate serve: %v\n", err)
		return &startedServer{code: exitError}
	}
	logger := newLogger(cfg.Log, stderr)
	for _, w := range warnings {
		logger.Warn(w)
	}

	// From here on, problems are reported through the configured logger (stderr).
	built, err := server.Build(ctx, cfg, logger, server.Options{NewGate: newGate})
	if err != nil {
		logger.Error("failed to start", "err", err)
		return &startedServer{code: exitError}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		built.Close()
		logger.Error("failed to listen", "listen", cfg.Listen, "err", err)
		return &startedServer{code: exitError}
	}
	srv := newHTTPServer(ctx, built.Handler, logger)
	logger.Info("pullgate listening", "addr", ln.Addr().String(), "config", cfg.File,
		"upstreams", config.RegistryList(cfg.Upstreams), "defaultUpstream", cfg.DefaultUpstream)
	return &startedServer{code: exitOK, logger: logger, srv: srv, ln: ln, reloads: newReloader(cfg, reloadOf(built), logger)}
}

// reloadOf is built's reload, nil when its gates cannot reload.
func reloadOf(built *server.Server) reloadFunc {
	if !built.CanReload() {
		return nil
	}
	return built.Reload
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
// in-flight requests get shutdownTimeout to finish. Each value on hup (SIGHUP) asks reloads
// for a reload, which runs off this loop: a reload that blocks never delays the shutdown.
// It returns nil after a clean shutdown, or the error that stopped the server.
func serveUntilDone(ctx context.Context, srv *http.Server, ln net.Listener, logger *slog.Logger, hup <-chan struct{}, reloads *reloader) error {
	if reloads == nil {
		reloads = &reloader{cfg: &config.Config{}, logger: logger}
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	for {
		select {
		case err := <-served:
			return fmt.Errorf("serving: %w", err)
		case <-hup:
			reloads.request(ctx)
		case <-reloads.deadline:
			reloads.expired(ctx)
		case res := <-reloads.results():
			reloads.finished(ctx, res)
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
