package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrtransport "github.com/google/go-containerregistry/pkg/v1/remote/transport"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/pullgate/pullgate/proxy"
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
}

var _ proxy.Source = (*Client)(nil)

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
	bt, err := baseTransport(opts)
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
	var inner http.RoundTripper = &schemeTransport{host: base.Host, scheme: base.Scheme, inner: bt}
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
		registryName: opts.Registry,
		base:         base,
		reg:          reg,
		auth:         auth,
		inner:        inner,
		log:          log.With(slog.String("upstream", opts.Registry)),
		scoped:       scoped,
	}, nil
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
		// Detached from the first caller: the others may still want the result. Each
		// phase is bounded by the transport's dial and header timeouts.
		setupCtx := context.WithoutCancel(ctx)
		scope := c.reg.Repo(repo).Scope(ggcrtransport.PullScope)
		t, err := ggcrtransport.NewWithContext(setupCtx, c.reg, c.auth, c.inner, []string{scope})
		if err != nil {
			return nil, err
		}
		c.log.LogAttrs(setupCtx, slog.LevelDebug, "authenticated transport ready", slog.String("scope", scope))
		c.scoped.Add(repo, t)
		return t, nil
	})
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
func (c *Client) do(ctx context.Context, method, repo, suffix string, query url.Values, header http.Header) (*http.Response, error) {
	return c.doPath(ctx, method, repo, "/v2/"+repo+"/"+suffix, query, header)
}

// doPath sends one request with the repository's pull credentials to path.
func (c *Client) doPath(ctx context.Context, method, repo, path string, query url.Values, header http.Header) (*http.Response, error) {
	t, err := c.transportFor(ctx, repo)
	if err != nil {
		return nil, err
	}
	u := *c.base
	u.Path = path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	client := &http.Client{Transport: t, CheckRedirect: checkRedirect}
	return client.Do(req)
}

// checkRedirect follows up to maxRedirects redirects (blobs are often redirected to
// object storage) but never from https to http. Credentials do not follow: the
// authenticating transports only add them for the upstream's own host.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("refusing redirect from https to %s", req.URL.Scheme)
	}
	return nil
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
