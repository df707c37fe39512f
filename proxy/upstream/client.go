package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrtransport "github.com/google/go-containerregistry/pkg/v1/remote/transport"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/pullgate/pullgate/proxy/content"
)

// Client reads from one upstream registry. It is safe for concurrent use and meant to
// live as long as the process: it keeps connections and bearer tokens.
type Client struct {
	registryName string
	base         *url.URL // scheme://host, the API root
	reg          name.Registry
	auth         authn.Authenticator
	// inner is the unauthenticated stack: connections, scheme, retries, user agent.
	inner http.RoundTripper
	log   *slog.Logger

	// scoped holds one authenticated transport per repository: go-containerregistry's
	// transport keeps the bearer token for its scope and refreshes it on 401.
	scoped *lru.Cache[string, http.RoundTripper]
	// setup makes concurrent first requests for a repository share one Ping and one
	// token fetch.
	setup singleflight.Group
	// extension remembers whether the upstream offers the signature API extension.
	extension extensionProbe

	// The deadlines of Options, defaults applied.
	setupTimeout, requestTimeout, blobStall time.Duration
}

var _ content.Source = (*Client)(nil)

// New returns a client for opts.URL. It reads the CA file and the docker config at once,
// so configuration mistakes surface at start-up; it does not contact the upstream.
func New(opts Options) (*Client, error) {
	if opts.Registry == "" {
		return nil, errors.New("upstream: registry name is empty")
	}
	base, err := apiRoot(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", opts.Registry, err)
	}
	var regOpts []name.Option
	if base.Scheme == "http" {
		regOpts = append(regOpts, name.Insecure)
	}
	reg, err := name.NewRegistry(base.Host, regOpts...)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: url host: %w", opts.Registry, err)
	}
	auth, err := authenticator(opts, base.Host)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", opts.Registry, err)
	}
	bt, err := baseTransport(opts, base)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", opts.Registry, err)
	}
	retries := opts.Retries
	switch {
	case retries == 0:
		retries = DefaultRetries
	case retries < 0:
		retries = 0
	}
	ua := opts.UserAgent
	if ua == "" {
		ua = "pullgate"
	}
	// Bottom up: connections (wrapped by kind); set-up bodies capped; redirects policed; the upstream's
	// scheme pinned; retries; user agent. go-containerregistry's authenticating
	// transports go on top, per repository.
	var conn http.RoundTripper = bt
	if opts.WrapTransport != nil {
		conn = newKindTransport(opts.WrapTransport(KindUpstream, bt), opts.WrapTransport(KindToken, bt))
	}
	var inner http.RoundTripper = &setupBodyLimit{inner: conn}
	inner = &redirectGuard{upstream: originOf(base), host: base.Host, inner: inner}
	inner = &schemeTransport{host: base.Host, scheme: base.Scheme, inner: inner}
	inner = &retryTransport{inner: inner, retries: retries, delay: retryBaseDelay}
	inner = ggcrtransport.NewUserAgent(inner, ua)

	scoped, err := lru.New[string, http.RoundTripper](maxScopedTransports)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", opts.Registry, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{
		registryName:   opts.Registry,
		base:           base,
		reg:            reg,
		auth:           auth,
		inner:          inner,
		log:            log.With(slog.String("upstream", opts.Registry)),
		scoped:         scoped,
		setupTimeout:   orDefault(opts.SetupTimeout, DefaultSetupTimeout),
		requestTimeout: orDefault(opts.RequestTimeout, DefaultRequestTimeout),
		blobStall:      orDefault(opts.BlobStallTimeout, DefaultBlobStallTimeout),
	}, nil
}

// orDefault is d, or def when d is not positive.
func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Registry is the registry name the client serves.
func (c *Client) Registry() string { return c.registryName }

// apiRoot checks an upstream URL and returns its scheme://host.
func apiRoot(u *url.URL) (*url.URL, error) {
	switch {
	case u == nil:
		return nil, errors.New("url is missing")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("url scheme must be http or https, not %q", u.Scheme)
	case u.Host == "":
		return nil, errors.New("url has no host")
	case u.User != nil:
		// Never echo the URL here: it holds the credentials.
		return nil, errors.New("url must not hold credentials: use username and password")
	case u.Path != "" && u.Path != "/":
		return nil, fmt.Errorf("url must not have a path (%q): the registry API lives at /v2/", u.Path)
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("url must not have a query or fragment")
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// transportFor returns the authenticated transport for a repository, creating it (Ping
// and, for bearer auth, the first token) once for concurrent callers.
func (c *Client) transportFor(ctx context.Context, repo string) (http.RoundTripper, error) {
	if t, ok := c.scoped.Get(repo); ok {
		return t, nil
	}
	ch := c.setup.DoChan(repo, func() (any, error) {
		if t, ok := c.scoped.Get(repo); ok {
			return t, nil
		}
		// Detached from the first caller (the others may still want the result) but
		// bounded as a whole, bodies included: dial and header timeouts alone let a
		// /v2/ or token body that never ends hold every caller.
		var over atomic.Bool
		setupCtx := context.WithValue(withClass(context.WithoutCancel(ctx), classSetup), overflowKey{}, &over)
		setupCtx, cancel := context.WithTimeoutCause(setupCtx, c.setupTimeout, &TimeoutError{Phase: phaseSetup, Limit: c.setupTimeout})
		defer cancel()
		scope := c.reg.Repo(repo).Scope(ggcrtransport.PullScope)
		t, err := ggcrtransport.NewWithContext(setupCtx, c.reg, c.auth, c.inner, []string{scope})
		// go-containerregistry ignores an error draining the ping's body: an upstream
		// that ran out the deadline or the size cap there is not set up.
		switch {
		case err != nil:
		case setupCtx.Err() != nil:
			err = context.Cause(setupCtx)
		case over.Load():
			err = fmt.Errorf("ping: %w", errBodyTooLarge)
		}
		if err != nil {
			// The ping's or the token request's own *url.Error, when it is one.
			return nil, ownTimeout(setupCtx, redactURLError(err))
		}
		c.log.LogAttrs(setupCtx, slog.LevelDebug, "authenticated transport ready", slog.String("scope", scope))
		c.scoped.Add(repo, t)
		return t, nil
	})
	// Each waiter stops waiting at its own context.
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(http.RoundTripper), nil
	}
}

// do sends one request for a repository: /v2/<repo>/<suffix>?<query>.
func (c *Client) do(ctx context.Context, class callClass, method, repo, suffix string, query url.Values, header http.Header) (*http.Response, error) {
	return c.doPath(ctx, class, method, repo, "/v2/"+repo+"/"+suffix, query, header)
}

// doPath sends one request with the repository's pull credentials to path. The answer
// is bounded by class: an API answer by the request deadline until its body is closed;
// a blob answer by the request deadline until its headers, then by the stall timeout
// for each Read of its body. The caller closes the body, which releases the request.
func (c *Client) doPath(ctx context.Context, class callClass, method, repo, path string, query url.Values, header http.Header) (*http.Response, error) {
	t, err := c.transportFor(ctx, repo)
	if err != nil {
		return nil, err
	}
	ctx, cancel, reqTimer := withTimer(withClass(ctx, class), phaseRequest, c.requestTimeout)
	u := *c.base
	u.Path = path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		reqTimer.Stop()
		cancel(nil)
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	client := &http.Client{Transport: t, CheckRedirect: checkRedirect}
	resp, err := client.Do(req)
	if err != nil {
		reqTimer.Stop()
		// The URL is the last one of the chain: for a blob, often a presigned storage
		// URL whose query is a credential. Redacted before ownTimeout copies the text.
		err = ownTimeout(ctx, redactURLError(err))
		cancel(nil)
		return nil, err
	}
	body := &boundedBody{body: resp.Body, ctx: ctx, cancel: cancel, reqTimer: reqTimer}
	if class == classBlob {
		reqTimer.Stop()
		stall := c.blobStall
		body.stall = stall
		body.stallTimer = time.AfterFunc(stall, func() { cancel(&TimeoutError{Phase: phaseBlobStall, Limit: stall}) })
		body.stallTimer.Stop() // armed by each Read
	}
	resp.Body = body
	return resp, nil
}

// authenticator returns the credentials to use: Username/Password, else the docker
// config's entry for the registry name or the URL's host, else anonymous.
func authenticator(opts Options, host string) (authn.Authenticator, error) {
	switch {
	case opts.Username != "":
		return &authn.Basic{Username: opts.Username, Password: opts.Password}, nil
	case opts.Password != "":
		return nil, errors.New("password is set without a username")
	case opts.DockerConfig != "":
		return dockerConfigAuth(opts.DockerConfig, []string{opts.Registry, host})
	}
	return authn.Anonymous, nil
}
