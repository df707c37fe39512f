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
	// maxHeaderBytes bounds a request's header block; beyond it the answer is 431. Go's
	// default, 1 MiB, let every connection, logged in or not, make pullgate hold a
	// megabyte (300 such raised its RSS from 38 to 384 MB). Registry clients send small
	// headers: pullgate reads at most 1 KiB of Authorization (basic credentials), and a
	// large bearer token or cookie set added by a proxy in front (nginx passes at most
	// 4 x 8 KiB by default) fits many times over.
	maxHeaderBytes = 64 << 10
)

// runServe implements `pullgate serve --config FILE`; newGate, when set, builds the gates
// instead of the policy gate (tests).
// Each value on hup is a reload request (SIGHUP), however early it came: one that arrives
// during the start-up is handled once pullgate serves. ctx ending (SIGINT, SIGTERM) stops
// the server, or the start-up.
func runServe(ctx context.Context, args []string, stderr io.Writer, newGate server.GateFactory, hup <-chan struct{}) int {
	fs := newFlagSet("serve", "serve --config FILE", stderr)
	configPath := fs.String("config", "", "configuration file (YAML); see config.example.yaml")
	if code, done := parseFlagsOnly(fs, args); done {
		return code
	}
	if *configPath == "" {
		fmt.Fprintln(stderr, "pullgate serve: --config FILE is required")
		return exitError
	}

	// The start-up can block (files on a hung network file system, a content store that
	// does not answer its probe); a stop request does not wait for it.
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
	defer s.built.Close()
	if s.opsSrv != nil {
		go func() {
			if err := s.opsSrv.Serve(s.opsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.logger.Error("metrics listener failed", "err", err)
			}
		}()
		defer s.opsSrv.Close()
	}
	if s.watcher != nil {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go s.watcher.run(wctx)
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
	built   *server.Server
	// opsSrv serves /metrics, /healthz and /readyz on opsLn; nil without metrics.listen.
	opsSrv  *http.Server
	opsLn   net.Listener
	watcher *fileWatcher
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
	srv.TLSConfig = built.TLSConfig()
	started := &startedServer{code: exitOK, logger: logger, srv: srv, ln: ln, built: built}
	if ops := built.OpsHandler(); ops != nil {
		started.opsLn, err = net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			ln.Close()
			built.Close()
			logger.Error("failed to listen", "metrics.listen", cfg.Metrics.Listen, "err", err)
			return &startedServer{code: exitError}
		}
		started.opsSrv = newHTTPServer(ctx, ops, logger)
		logger.Info("metrics listening", "addr", started.opsLn.Addr().String())
	}
	started.reloads = newReloader(cfg, reloadOf(built), logger)
	started.reloads.files = fileReloads(built, logger)
	if w, err := newFileWatcher(logger); err != nil {
		logger.Warn("cannot watch files for changes; use SIGHUP to reload", "err", err)
	} else {
		w.set(built.WatchedFiles())
		started.watcher = w
		started.reloads.changes = w.changed
		started.reloads.applied = func() { w.set(built.WatchedFiles()) }
	}
	logger.Info("pullgate listening", "addr", ln.Addr().String(), "config", cfg.File, "tls", srv.TLSConfig != nil,
		"clientCertificates", cfg.TLS.ClientCAFile != "", "auth", cfg.Auth.Htpasswd != "",
		"upstreams", config.RegistryList(cfg.Upstreams), "defaultUpstream", cfg.DefaultUpstream)
	return started
}

// fileReloads returns the reload of the TLS and htpasswd files, nil when neither is
// configured. Requests are handed to one goroutine (at most one waits), so that a file
// that blocks never holds up the signal loop and costs one goroutine, not one per change.
func fileReloads(built *server.Server, logger *slog.Logger) func() {
	if built.TLSConfig() == nil && !built.HasAuth() {
		return nil
	}
	requests := make(chan struct{}, 1)
	go func() {
		for range requests {
			if err := built.ReloadFiles(); err != nil {
				logger.Error("failed to reload the TLS or htpasswd files; the running ones stay in force", "err", err)
				continue
			}
			logger.Info("TLS and htpasswd files reloaded")
		}
	}()
	return func() {
		select {
		case requests <- struct{}{}:
		default:
		}
	}
}

// reloadOf is built's reload, nil when its gates cannot reload.
func reloadOf(built *server.Server) reloadFunc {
	if !built.CanReload() {
		return nil
	}
	return built.Reload
}

// newHTTPServer returns the server for handler (the proxy's and the metrics listener's).
// Requests get a context that is not cancelled when shutdown starts, so that Shutdown can
// let them finish.
func newHTTPServer(ctx context.Context, handler http.Handler, logger *slog.Logger) *http.Server {
	base := context.WithoutCancel(ctx)
	return &http.Server{
		Handler:           boundRequestBodies(handler),
		ReadHeaderTimeout: readHeaderTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
}

// boundRequestBodies gives an HTTP/1 request that has a body (a Content-Length, or
// chunked) readHeaderTimeout more to send it, and closes its connection after the answer.
// Nothing pullgate serves reads a body (the registry API it offers is read-only), but
// net/http reads up to 256 KiB of an unread body, with no deadline, before it answers
// or reuses the connection: a client that declared a body and sent none held the
// connection, a goroutine and graceful shutdown forever, without logging in. With
// Connection: close the answer is written at once, and the deadline bounds the read
// that remains. Requests without a body get no read deadline: it would fail net/http's
// background read of the connection, which cancels the request, and so cut a long blob
// stream. http.Server.ReadTimeout is not used either: net/http discards the unread body
// before writing the answer, so that would wait for the deadline.
//
// Such requests still get the answer they would get without a body (401 without login,
// 405 for an upload, ...) rather than a refusal of their own: it is what an operator
// reads in the access log and the metrics, and what a client's error message says.
// HTTP/2 is left alone: a stream's unread body holds nothing, and Connection: close
// would end every other stream of the connection.
func boundRequestBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 && r.ProtoMajor == 1 {
			w.Header().Set("Connection", "close")
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(readHeaderTimeout))
		}
		next.ServeHTTP(w, r)
	})
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
	go func() {
		if srv.TLSConfig != nil {
			// The certificate comes from TLSConfig.GetCertificate, not from files here.
			served <- srv.ServeTLS(ln, "", "")
			return
		}
		served <- srv.Serve(ln)
	}()

	for {
		select {
		case err := <-served:
			return fmt.Errorf("serving: %w", err)
		case <-hup:
			reloads.request(ctx)
		case at := <-reloads.changes:
			reloads.changed(ctx, at)
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
