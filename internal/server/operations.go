package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"

	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/policy"
	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/enforce"
)

// operations are the optional pieces of the operations contract: TLS, basic auth,
// metrics and health, the audit file and warn scopes. Each is nil when not configured.
type operations struct {
	tls     *TLSFiles
	auth    *basicAuth
	metrics *Metrics
	audit   *Audit
	warn    *policy.ScopeSet
	// policyLoaded is true once Build has loaded the policy (readyz).
	policyLoaded atomic.Bool
	// contentReady, when set, tells whether the content store answers (readyz).
	contentReady atomic.Pointer[func(context.Context) error]
}

// newOperations reads the files the operations keys name: a missing or unreadable
// certificate, key, CA or htpasswd file stops the start-up with an error naming its key.
func newOperations(cfg *config.Config, logger *slog.Logger) (*operations, error) {
	o := &operations{}
	var err error
	if cfg.TLS.Enabled() {
		if o.tls, err = NewTLSFiles(cfg.TLS); err != nil {
			return nil, err
		}
	}
	if cfg.Auth.Htpasswd != "" {
		if o.auth, err = newBasicAuth(cfg.Auth.Htpasswd, cfg.Auth.FailedLoginsPerMinute, logger); err != nil {
			return nil, err
		}
	}
	if len(cfg.Enforcement.Warn) > 0 {
		if o.warn, err = policy.NewScopeSet(cfg.Enforcement.Warn); err != nil {
			return nil, errors.Join(config.ErrInvalid, err)
		}
	}
	if cfg.Metrics.Listen != "" {
		o.metrics = NewMetrics()
	}
	if cfg.Audit.Path != "" {
		var dropped, failed func()
		if o.metrics != nil {
			dropped, failed = o.metrics.auditDropped.Inc, o.metrics.auditFailed.Inc
		}
		if o.audit, err = NewAudit(cfg.Audit.Path, logger, dropped, failed); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Close flushes and closes the audit file.
func (o *operations) Close() error {
	if o.audit != nil {
		return o.audit.Close()
	}
	return nil
}

func (o *operations) wrapUpstream() func(string) func(http.RoundTripper) http.RoundTripper {
	if o.metrics == nil {
		return nil
	}
	return o.metrics.WrapUpstream
}

// gateOps are the gate's hooks: the decision line, metrics and audit, the warn scopes,
// and the timing of evaluations and signature fetches.
func (o *operations) gateOps(logger *slog.Logger) gateOps {
	obs := decisionObservers{enforce.LogDecisions(logger)}
	g := gateOps{warn: o.warn}
	if o.metrics != nil {
		obs = append(obs, o.metrics)
		m := o.metrics
		g.wrapEval = func(e enforce.Evaluator) enforce.Evaluator { return newTimedEvaluator(e, m.evaluateTime) }
		g.wrapFinder = func(f enforce.Finder) enforce.Finder { return timedFinder{inner: f, took: m.signatureTime} }
	}
	if o.audit != nil {
		obs = append(obs, o.audit)
	}
	g.onDecision = obs
	return g
}

// observer is the handler's: the access line, and the metrics.
func (o *operations) observer(logger *slog.Logger) proxy.Observer {
	if o.metrics == nil {
		return proxy.AccessLog(logger)
	}
	return proxy.Observers(proxy.AccessLog(logger), o.metrics)
}

// TLSConfig is the proxy listener's TLS configuration, nil for plain HTTP.
func (s *Server) TLSConfig() *tls.Config {
	if s.ops.tls == nil {
		return nil
	}
	return s.ops.tls.Config()
}

// readyTimeout bounds readyz's check of the content store.
const readyTimeout = 2 * time.Second

// OpsHandler serves /metrics, /healthz and /readyz; nil without metrics.listen.
func (s *Server) OpsHandler() http.Handler {
	if s.ops.metrics == nil {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.ops.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := s.ready(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}

// ready says why pullgate cannot serve yet: no policy loaded, or the store not answering.
func (s *Server) ready(ctx context.Context) error {
	if !s.ops.policyLoaded.Load() {
		return errors.New("the policy is not loaded")
	}
	if check := s.ops.contentReady.Load(); check != nil {
		ctx, cancel := context.WithTimeout(ctx, readyTimeout)
		defer cancel()
		if err := (*check)(ctx); err != nil {
			return errors.New("the content store does not answer")
		}
	}
	return nil
}

// contentStatsHook is where a content store joins the operations: its statistics become
// the pullgate_content_* families and its reachability part of /readyz. Build calls it
// when it builds a store (cache/store's Stats maps to ContentStats).
func (s *Server) contentStatsHook(stats ContentStats, reachable func(context.Context) error) {
	if s.ops.metrics != nil && stats != nil {
		s.ops.metrics.RegisterContent(stats)
	}
	if reachable != nil {
		s.ops.contentReady.Store(&reachable)
	}
}

// ReloadFiles re-reads the TLS files and the htpasswd file; what does not load is
// refused and the running one stays. It returns one error per file set refused.
func (s *Server) ReloadFiles() error {
	var errs []error
	if s.ops.tls != nil {
		errs = append(errs, s.ops.tls.Reload())
	}
	if s.ops.auth != nil {
		errs = append(errs, s.ops.auth.Reload())
	}
	return errors.Join(errs...)
}

// WatchedFiles are the files whose changes serve picks up: the policy, the key files it
// names, registries.d (a folder), the TLS files and the htpasswd file. Relative key file
// paths are made absolute against the working directory, as the policy reads them.
func (s *Server) WatchedFiles() (files []string, dirs []string) {
	if s.enforce != nil {
		files = append(files, s.enforce.cfg.Policy.Path)
		if pol := s.enforce.policy.Load(); pol != nil {
			for _, k := range pol.KeyFiles() {
				if abs, err := filepath.Abs(k); err == nil {
					files = append(files, abs)
				}
			}
		}
		if d := s.enforce.cfg.Policy.RegistriesDir; d != "" {
			dirs = append(dirs, d)
		}
	}
	if s.ops.tls != nil {
		files = append(files, s.ops.tls.Files()...)
	}
	if s.ops.auth != nil {
		files = append(files, s.ops.auth.Files()...)
	}
	return files, dirs
}

// HasAuth reports whether the proxy listener requires basic auth.
func (s *Server) HasAuth() bool { return s.ops.auth != nil }
