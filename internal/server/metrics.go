package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pullgate/pullgate/policy"
	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/enforce"
)

// Metrics are pullgate's Prometheus metrics, in a registry of their own (never the
// global one, so that nothing a dependency registers is exposed). They are fed by the
// handler's Observer, the gate's DecisionObserver, the upstream transports, and timing
// decorators around the policy and the signature finder: nothing on the request path
// waits for them beyond a counter increment.
type Metrics struct {
	reg *prometheus.Registry

	decisions     *prometheus.CounterVec
	warned        *prometheus.CounterVec
	verdictCache  *prometheus.CounterVec
	decisionTime  *prometheus.HistogramVec
	requests      *prometheus.CounterVec
	requestTime   *prometheus.HistogramVec
	upstream      *prometheus.CounterVec
	upstreamTime  *prometheus.HistogramVec
	signatureTime prometheus.Histogram
	evaluateTime  prometheus.Histogram
	auditDropped  prometheus.Counter
	auditFailed   prometheus.Counter
}

// latencyBuckets cover a warm manifest (sub-millisecond) to a slow signature fetch.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// NewMetrics registers every family (with the Go runtime and process collectors).
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pullgate_decisions_total",
		Help: "Decisions of the gate (manifests, and refused blobs), by verdict: accept, deny, error (could not decide)."}, []string{"verdict"})
	m.warned = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pullgate_warned_total",
		Help: "Denials served because their identity is in an enforcement.warn scope, by that scope."}, []string{"scope"})
	m.verdictCache = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pullgate_verdict_cache_total",
		Help: "Where manifest verdicts came from: hit (verdict cache), miss (evaluated), shared (joined a running evaluation), none (no policy needed)."}, []string{"result"})
	m.decisionTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pullgate_decision_duration_seconds",
		Help: "Time to decide on a manifest, by verdict cache result.", Buckets: latencyBuckets}, []string{"cache"})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pullgate_http_requests_total",
		Help: "Requests answered on the proxy listener, by HTTP status (0: aborted before the headers)."}, []string{"code"})
	m.requestTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pullgate_http_request_duration_seconds",
		Help: "Time to answer a request, by endpoint kind (manifest, blob, tags, referrers, signatures, base, other).", Buckets: latencyBuckets}, []string{"endpoint"})
	m.upstream = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pullgate_upstream_requests_total",
		Help: "HTTP exchanges with upstream registries, by upstream and status (error: no answer)."}, []string{"upstream", "code"})
	m.upstreamTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pullgate_upstream_request_duration_seconds",
		Help: "Time to an upstream's response headers, by upstream.", Buckets: latencyBuckets}, []string{"upstream"})
	m.signatureTime = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pullgate_signature_fetch_duration_seconds",
		Help: "Time to fetch one image's signatures from its sources.", Buckets: latencyBuckets})
	m.evaluateTime = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pullgate_policy_evaluation_duration_seconds",
		Help: "Time of one policy evaluation, the signature fetch it needs included.", Buckets: latencyBuckets})
	m.auditDropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "pullgate_audit_dropped_total",
		Help: "Audit records dropped because the audit buffer was full (the file is slow or failing)."})
	m.auditFailed = prometheus.NewCounter(prometheus.CounterOpts{Name: "pullgate_audit_write_errors_total",
		Help: "Failed writes or reopens of the audit file."})
	m.reg.MustRegister(m.decisions, m.warned, m.verdictCache, m.decisionTime, m.requests, m.requestTime,
		m.upstream, m.upstreamTime, m.signatureTime, m.evaluateTime, m.auditDropped, m.auditFailed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The contract's families exist from the start, at zero.
	for _, v := range []string{"accept", "deny", "error"} {
		m.decisions.WithLabelValues(v)
	}
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Observe implements proxy.Observer.
func (m *Metrics) Observe(_ context.Context, rt proxy.Route, rec proxy.AccessRecord) {
	m.requests.WithLabelValues(strconv.Itoa(rec.Status)).Inc()
	m.requestTime.WithLabelValues(endpointKind(rt.Endpoint)).Observe(rec.Duration.Seconds())
}

// endpointKind keeps the endpoint label to a fixed set.
func endpointKind(e string) string {
	switch e {
	case "manifest", "blob", "tags", "referrers", "signatures":
		return e
	case "ping":
		return "base"
	}
	return "other"
}

// ObserveDecision implements enforce.DecisionObserver.
func (m *Metrics) ObserveDecision(_ context.Context, d enforce.DecisionRecord) {
	m.decisions.WithLabelValues(d.Verdict).Inc()
	if d.Verdict == "deny" && !d.Enforced {
		m.warned.WithLabelValues(d.WarnScope).Inc()
	}
	if d.Kind == "manifest" && d.Cache != "" {
		m.verdictCache.WithLabelValues(d.Cache).Inc()
		m.decisionTime.WithLabelValues(d.Cache).Observe(d.Duration.Seconds())
	}
}

// WrapUpstream returns the transport wrapper of one upstream's client.
func (m *Metrics) WrapUpstream(registry string) func(http.RoundTripper) http.RoundTripper {
	return func(inner http.RoundTripper) http.RoundTripper {
		return &meteredTransport{inner: inner, count: m.upstream.MustCurryWith(prometheus.Labels{"upstream": registry}),
			took: m.upstreamTime.WithLabelValues(registry)}
	}
}

type meteredTransport struct {
	inner http.RoundTripper
	count *prometheus.CounterVec
	took  prometheus.Observer
}

func (t *meteredTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.inner.RoundTrip(r)
	t.took.Observe(time.Since(start).Seconds())
	if err != nil {
		t.count.WithLabelValues("error").Inc()
		return resp, err
	}
	t.count.WithLabelValues(strconv.Itoa(resp.StatusCode)).Inc()
	return resp, nil
}

// ContentStats is what the content store reports (cache/store's Stats, read through
// this function so that this package does not depend on the store).
type ContentStats func() (hits, misses, staleServes, bytesKept int64)

// RegisterContent adds the content store's families, read at each scrape. Build calls it
// when it has a store (see contentStatsHook).
func (m *Metrics) RegisterContent(stats ContentStats) {
	m.reg.MustRegister(&contentCollector{stats: stats})
}

var (
	contentBytesDesc  = prometheus.NewDesc("pullgate_content_bytes", "Bytes kept in the content store.", nil, nil)
	contentHitsDesc   = prometheus.NewDesc("pullgate_content_hits_total", "Requests served from the content store.", nil, nil)
	contentMissesDesc = prometheus.NewDesc("pullgate_content_misses_total", "Requests the content store could not serve.", nil, nil)
	contentStaleDesc  = prometheus.NewDesc("pullgate_content_stale_serves_total", "Tags answered from the store with an upstream unreachable (maxStale).", nil, nil)
)

type contentCollector struct{ stats ContentStats }

func (c *contentCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- contentBytesDesc
	ch <- contentHitsDesc
	ch <- contentMissesDesc
	ch <- contentStaleDesc
}

func (c *contentCollector) Collect(ch chan<- prometheus.Metric) {
	hits, misses, stale, kept := c.stats()
	ch <- prometheus.MustNewConstMetric(contentBytesDesc, prometheus.GaugeValue, float64(kept))
	ch <- prometheus.MustNewConstMetric(contentHitsDesc, prometheus.CounterValue, float64(hits))
	ch <- prometheus.MustNewConstMetric(contentMissesDesc, prometheus.CounterValue, float64(misses))
	ch <- prometheus.MustNewConstMetric(contentStaleDesc, prometheus.CounterValue, float64(stale))
}

// timedEvaluator times every policy evaluation.
type timedEvaluator struct {
	inner enforce.Evaluator
	took  prometheus.Observer
}

func (e timedEvaluator) Evaluate(ctx context.Context, img policy.Image, src policy.SignatureSource) (policy.Verdict, error) {
	start := time.Now()
	v, err := e.inner.Evaluate(ctx, img, src)
	e.took.Observe(time.Since(start).Seconds())
	return v, err
}

// timedFinder times every signature fetch.
type timedFinder struct {
	inner enforce.Finder
	took  prometheus.Observer
}

func (f timedFinder) Signatures(ctx context.Context, registry, repository string, identity reference.Named, d digest.Digest) ([]policy.Signature, error) {
	start := time.Now()
	sigs, err := f.inner.Signatures(ctx, registry, repository, identity, d)
	f.took.Observe(time.Since(start).Seconds())
	return sigs, err
}

// decisionObservers passes each decision to every one of obs.
type decisionObservers []enforce.DecisionObserver

func (o decisionObservers) ObserveDecision(ctx context.Context, d enforce.DecisionRecord) {
	for _, ob := range o {
		ob.ObserveDecision(ctx, d)
	}
}

// ID passes the policy's content ID on, so that timing it keeps the gate's policy key.
func (e timedEvaluator) ID() string { return idOf(e.inner) }

// timedRepositoryEvaluator is a timedEvaluator over a policy that can refuse listings
// (enforce.RepositoryPolicy): the gate finds that ability by type assertion, so the
// decorator must keep it, or timing the policy would open the listings of reject scopes.
type timedRepositoryEvaluator struct {
	timedEvaluator
	repo enforce.RepositoryPolicy
}

func (e timedRepositoryEvaluator) RejectsRepository(named reference.Named) (string, bool) {
	return e.repo.RejectsRepository(named)
}

// newTimedEvaluator times inner, keeping what the gate finds by type assertion.
func newTimedEvaluator(inner enforce.Evaluator, took prometheus.Observer) enforce.Evaluator {
	t := timedEvaluator{inner: inner, took: took}
	if rp, ok := inner.(enforce.RepositoryPolicy); ok {
		return timedRepositoryEvaluator{timedEvaluator: t, repo: rp}
	}
	return t
}

// ID passes the finder's content ID on.
func (f timedFinder) ID() string { return idOf(f.inner) }

func idOf(v any) string {
	if id, ok := v.(enforce.Identified); ok {
		return id.ID()
	}
	return ""
}
