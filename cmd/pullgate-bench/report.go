package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Targets from the issues. They are reported, met or not; they never change the exit
// status (the machine's load decides too much of a loopback benchmark).
const (
	// targetThroughputRatio: blob throughput through pullgate ≥ 0.9× direct.
	targetThroughputRatio = 0.9
	// targetLatencyFactor and targetLatencyAddMs: warm manifest GET ≤ 1.1× direct plus
	// less than 1 ms.
	targetLatencyFactor = 1.1
	targetLatencyAddMs  = 1.0
	// targetRSSGrowth: "RSS independent of blob size", judged as the peak RSS growing by
	// less than this fraction of the big layer when the big layer follows the small ones.
	targetRSSGrowth = 0.05
	// targetStoreRSSMiB: peak RSS while a large blob streams from the store (issue 10).
	targetStoreRSSMiB = 64
)

// report is everything one run measured. Its JSON form is the -json output.
type report struct {
	Machine         machineInfo    `json:"machine"`
	Options         *options       `json:"options"`
	Throughput      throughputs    `json:"throughput"`
	ManifestLatency latencies      `json:"manifestLatency"`
	ColdPull        coldResult     `json:"coldPull"`
	Memory          memoryResult   `json:"pullgateMemory"`
	Content         *contentResult `json:"content,omitempty"`
	Targets         []targetCheck  `json:"targets"`
	// Operations is the -ops comparison; nil without -ops.
	Operations     *opsResult `json:"operations,omitempty"`
	ElapsedSeconds float64    `json:"elapsedSeconds"`
}

type machineInfo struct {
	CPUs         int    `json:"cpus"`
	CPUModel     string `json:"cpuModel"`
	OS           string `json:"os"`
	Arch         string `json:"arch"`
	GoVersion    string `json:"goVersion"`
	LoadAvgStart string `json:"loadAvgStart"` // /proc/loadavg before the run (1, 5, 15 min)
	LoadAvgEnd   string `json:"loadAvgEnd"`
	Registry     string `json:"registry"`
	Pullgate     string `json:"pullgate"`
}

type throughputs struct {
	BigLayer   throughputResult `json:"bigLayer"`
	MultiLayer throughputResult `json:"multiLayer"`
}

// throughputResult compares pulling the same blobs directly and through pullgate.
type throughputResult struct {
	Blobs       int       `json:"blobs"`
	Bytes       int64     `json:"bytes"`
	DirectMiBps float64   `json:"directMiBps"` // median over the runs
	ProxyMiBps  float64   `json:"proxyMiBps"`  // median over the runs
	Ratio       float64   `json:"ratio"`       // proxy / direct
	DirectRuns  []float64 `json:"directRunsMiBps"`
	ProxyRuns   []float64 `json:"proxyRunsMiBps"`
	// DirectCPU and ProxyCPU are the CPU seconds each party spent per GiB transferred.
	DirectCPU cpuPerGiB `json:"directCPUSecondsPerGiB"`
	ProxyCPU  cpuPerGiB `json:"proxyCPUSecondsPerGiB"`
	// PullgateMiBpsPerCore is what one fully used core lets pullgate relay at this CPU
	// cost (1 GiB / pullgate's CPU seconds per GiB): its ceiling where the network is not
	// the bottleneck. Zero when no CPU time was measured.
	PullgateMiBpsPerCore float64 `json:"pullgateMiBpsPerCore"`
}

type cpuPerGiB struct {
	Registry float64 `json:"registry"`
	Pullgate float64 `json:"pullgate"`
	Client   float64 `json:"client"`
}

func perGiB(t transferSide) cpuPerGiB {
	gib := float64(t.bytes) / (1 << 30)
	return cpuPerGiB{Registry: t.cpu.registry.Seconds() / gib, Pullgate: t.cpu.pullgate.Seconds() / gib,
		Client: t.cpu.client.Seconds() / gib}
}

func newThroughput(layersBytes int64, blobs int, direct, proxied transferSide) throughputResult {
	r := throughputResult{Blobs: blobs, Bytes: layersBytes, DirectRuns: direct.runs, ProxyRuns: proxied.runs,
		DirectMiBps: median(direct.runs), ProxyMiBps: median(proxied.runs),
		DirectCPU: perGiB(direct), ProxyCPU: perGiB(proxied)}
	r.Ratio = r.ProxyMiBps / r.DirectMiBps
	if r.ProxyCPU.Pullgate > 0 {
		r.PullgateMiBpsPerCore = 1024 / r.ProxyCPU.Pullgate
	}
	return r
}

type latencies struct {
	ManifestBytes int           `json:"manifestBytes"`
	ByTag         latencyResult `json:"byTag"`
	ByDigest      latencyResult `json:"byDigest"`
}

// latencyResult compares warm manifest GETs directly and through pullgate.
type latencyResult struct {
	Samples    int           `json:"samples"`
	Direct     durationStats `json:"direct"`
	Proxy      durationStats `json:"proxy"`
	RatioP50   float64       `json:"ratioP50"`
	RatioMean  float64       `json:"ratioMean"`
	AddedP50Ms float64       `json:"addedP50Ms"` // proxy p50 − direct p50
}

func newLatency(direct, proxied []time.Duration) latencyResult {
	r := latencyResult{Samples: len(direct), Direct: summarise(direct), Proxy: summarise(proxied)}
	r.RatioP50 = r.Proxy.P50 / r.Direct.P50
	r.RatioMean = r.Proxy.Mean / r.Direct.Mean
	r.AddedP50Ms = r.Proxy.P50 - r.Direct.P50
	return r
}

// coldResult is the first pull of freshly signed images: medians over the images.
type coldResult struct {
	Images       int     `json:"images"`
	DirectMs     float64 `json:"directMs"`     // manifest GET from the registry
	ProxyFirstMs float64 `json:"proxyFirstMs"` // first GET through pullgate
	ProxyWarmMs  float64 `json:"proxyWarmMs"`  // the GET right after, verdict cached
	AddedMs      float64 `json:"addedMs"`      // first − direct, per image: what pullgate adds on a first pull
	VerifyMs     float64 `json:"verifyMs"`     // first − warm, per image: signature fetch + verification
}

func newCold(samples []coldSample) coldResult {
	var d, f, w, added, verify []float64
	for _, s := range samples {
		d = append(d, ms(s.direct))
		f = append(f, ms(s.proxyFirst))
		w = append(w, ms(s.proxyWarm))
		added = append(added, ms(s.proxyFirst-s.direct))
		verify = append(verify, ms(s.proxyFirst-s.proxyWarm))
	}
	return coldResult{Images: len(samples), DirectMs: median(d), ProxyFirstMs: median(f),
		ProxyWarmMs: median(w), AddedMs: median(added), VerifyMs: median(verify)}
}

// memoryResult is pullgate's resident memory at points of the run.
type memoryResult struct {
	Startup         memory `json:"startup"`
	AfterMultiLayer memory `json:"afterMultiLayer"` // after manifests, cold pulls and the multi-layer blobs
	AfterBigLayer   memory `json:"afterBigLayer"`   // after the big layer too
	// SampledMaxDuringBigKiB is the largest VmRSS sampled while the big layer streamed.
	SampledMaxDuringBigKiB int64 `json:"sampledMaxDuringBigKiB"`
	Samples                int64 `json:"samples"`
	// PeakGrowthKiB is how much the peak (VmHWM) grew while the big layer streamed.
	PeakGrowthKiB int64 `json:"peakGrowthKiB"`
}

// targetCheck is one target of the issues and whether this run met it.
type targetCheck struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

func (r *report) checkTargets() {
	tp := func(name string, t throughputResult) targetCheck {
		return targetCheck{Name: name, Target: fmt.Sprintf("≥ %.2f× direct", targetThroughputRatio),
			Measured: fmt.Sprintf("%.2f× (%.0f vs %.0f MiB/s)", t.Ratio, t.ProxyMiBps, t.DirectMiBps),
			Met:      t.Ratio >= targetThroughputRatio}
	}
	lat := func(name string, l latencyResult) targetCheck {
		limit := targetLatencyFactor*l.Direct.P50 + targetLatencyAddMs
		return targetCheck{Name: name, Target: fmt.Sprintf("p50 < %.1f× direct + %.0f ms", targetLatencyFactor, targetLatencyAddMs),
			Measured: fmt.Sprintf("%.3f ms vs limit %.3f ms (%+.3f ms)", l.Proxy.P50, limit, l.AddedP50Ms),
			Met:      l.Proxy.P50 < limit}
	}
	bigKiB := int64(r.Options.BigLayerMiB) * 1024
	allowed := int64(targetRSSGrowth * float64(bigKiB))
	m := r.Memory
	r.Targets = []targetCheck{
		tp("blob throughput, big layer", r.Throughput.BigLayer),
		tp("blob throughput, multi-layer", r.Throughput.MultiLayer),
		lat("warm manifest GET by tag", r.ManifestLatency.ByTag),
		lat("warm manifest GET by digest", r.ManifestLatency.ByDigest),
		{Name: "pullgate RSS independent of blob size",
			Target: fmt.Sprintf("peak grows < %.0f%% of the big layer (%s)", targetRSSGrowth*100, kib(allowed)),
			Measured: fmt.Sprintf("peak %s → %s (%+.1f MiB) over %d MiB",
				kib(m.AfterMultiLayer.HWMKiB), kib(m.AfterBigLayer.HWMKiB), float64(m.PeakGrowthKiB)/1024, r.Options.BigLayerMiB),
			Met: m.PeakGrowthKiB < allowed},
	}
	if c := r.Content; c != nil {
		for _, t := range []struct {
			name string
			t    sideThroughput
		}{{"big layer", c.Throughput.BigLayer}, {"multi-layer", c.Throughput.MultiLayer}} {
			r.Targets = append(r.Targets,
				targetCheck{Name: "warm blob throughput from the store, " + t.name, Target: "≥ direct",
					Measured: fmt.Sprintf("%.2f× (%.0f vs %.0f MiB/s)", t.t.StoreMiBps/t.t.DirectMiBps, t.t.StoreMiBps, t.t.DirectMiBps),
					Met:      t.t.StoreMiBps >= t.t.DirectMiBps},
				targetCheck{Name: "warm blob throughput from the store vs the peer, " + t.name, Target: "> distribution's proxy mode",
					Measured: fmt.Sprintf("%.2f× (%.0f vs %.0f MiB/s)", t.t.StoreMiBps/t.t.PeerMiBps, t.t.StoreMiBps, t.t.PeerMiBps),
					Met:      t.t.StoreMiBps > t.t.PeerMiBps})
		}
		sm := c.StoreMemory
		peak := max(sm.AfterServeHWM, sm.SampledMaxKiB)
		r.Targets = append(r.Targets,
			targetCheck{Name: "warm manifest GET by tag within tagTTL", Target: "p50 ≤ direct",
				Measured: fmt.Sprintf("%.3f ms vs %.3f ms", c.ByTag.Store.P50, c.ByTag.Direct.P50),
				Met:      c.ByTag.Store.P50 <= c.ByTag.Direct.P50},
			targetCheck{Name: fmt.Sprintf("%d concurrent first pulls", c.Crowd.Clients), Target: fmt.Sprintf("%d upstream blob GETs (one per blob)", c.Crowd.Blobs),
				Measured: fmt.Sprintf("%d (peer: %d)", c.Crowd.StoreUpstreamBlobGETs, c.Crowd.PeerUpstreamBlobGETs),
				Met:      c.Crowd.StoreUpstreamBlobGETs == int64(c.Crowd.Blobs)},
			targetCheck{Name: fmt.Sprintf("peak RSS while %d MiB streams from the store", sm.BlobMiB), Target: fmt.Sprintf("< %d MiB", targetStoreRSSMiB),
				Measured: fmt.Sprintf("VmHWM %s, largest sampled VmRSS %s", kib(sm.AfterServeHWM), kib(sm.SampledMaxKiB)),
				Met:      peak < targetStoreRSSMiB*1024})
	}
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *report) writeTable(w io.Writer) error {
	o, m := r.Options, r.Machine
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format+"\n", a...) }
	p("pullgate-bench\t%s, %d CPUs, %s/%s, %s", m.CPUModel, m.CPUs, m.OS, m.Arch, m.GoVersion)
	p("load average\tbefore %s, after %s", m.LoadAvgStart, m.LoadAvgEnd)
	p("upstream\t%s", m.Registry)
	if o.UpstreamMbit > 0 {
		p("upstream link\tanswers paced to %d Mbit/s (%.0f MiB/s) on both sides", o.UpstreamMbit, float64(o.UpstreamMbit)*1e6/8/mib)
	} else {
		p("upstream link\tplain loopback: every process is CPU-bound (see docs/benchmarks.md)")
	}
	p("client\tsequential GETs on keep-alive loopback connections; blob bodies %s",
		map[bool]string{true: "hashed (sha256)", false: "read and discarded"}[o.ClientHash])
	p("")
	p("BLOB THROUGHPUT (median of %d runs)\tdirect\tpullgate\tratio", o.Runs)
	for _, t := range byImage(o, r.Throughput.BigLayer, r.Throughput.MultiLayer) {
		p("  %s\t%.0f MiB/s\t%.0f MiB/s\t%.2f×", t.name, t.v.DirectMiBps, t.v.ProxyMiBps, t.v.Ratio)
		dc, xc := t.v.DirectCPU, t.v.ProxyCPU
		p("    CPU s per GiB: registry, pullgate, client\t%.2f, -, %.2f\t%.2f, %.2f, %.2f", dc.Registry, dc.Client, xc.Registry, xc.Pullgate, xc.Client)
		p("    pullgate's CPU-bound ceiling\t\t%.0f MiB/s per core", t.v.PullgateMiBpsPerCore)
	}
	p("")
	p("MANIFEST GET, warm verdict (%d each, %d bytes)\tdirect\tpullgate\tratio\tpullgate − direct", o.N, r.ManifestLatency.ManifestBytes)
	for _, l := range []struct {
		name string
		r    latencyResult
	}{{"by tag", r.ManifestLatency.ByTag}, {"by digest", r.ManifestLatency.ByDigest}} {
		d, x := l.r.Direct, l.r.Proxy
		p("  %s p50\t%.3f ms\t%.3f ms\t%.2f×\t%+.3f ms", l.name, d.P50, x.P50, l.r.RatioP50, x.P50-d.P50)
		p("  %s p90\t%.3f ms\t%.3f ms\t%.2f×\t%+.3f ms", l.name, d.P90, x.P90, x.P90/d.P90, x.P90-d.P90)
		p("  %s p99\t%.3f ms\t%.3f ms\t%.2f×\t%+.3f ms", l.name, d.P99, x.P99, x.P99/d.P99, x.P99-d.P99)
		p("  %s mean\t%.3f ms\t%.3f ms\t%.2f×\t%+.3f ms", l.name, d.Mean, x.Mean, l.r.RatioMean, x.Mean-d.Mean)
	}
	p("")
	c := r.ColdPull
	p("COLD FIRST PULL, signed image (median of %d fresh images, %s lookaside)", c.Images, o.Lookaside)
	p("  manifest GET direct\t%.3f ms", c.DirectMs)
	p("  first GET through pullgate\t%.3f ms", c.ProxyFirstMs)
	p("  second GET through pullgate\t%.3f ms", c.ProxyWarmMs)
	p("  added by pullgate (first − direct)\t%.3f ms", c.AddedMs)
	p("  signature fetch + verification (first − second)\t%.3f ms", c.VerifyMs)
	p("")
	mm := r.Memory
	p("PULLGATE MEMORY (VmRSS / VmHWM peak)")
	p("  at start\t%s / %s", kib(mm.Startup.RSSKiB), kib(mm.Startup.HWMKiB))
	p("  after manifests and %d × %d MiB\t%s / %s", o.Layers, o.LayerMiB, kib(mm.AfterMultiLayer.RSSKiB), kib(mm.AfterMultiLayer.HWMKiB))
	p("  after %d × %d MiB more\t%s / %s", o.Runs, o.BigLayerMiB, kib(mm.AfterBigLayer.RSSKiB), kib(mm.AfterBigLayer.HWMKiB))
	p("  largest VmRSS while %d MiB streamed\t%s (%d samples)", o.BigLayerMiB, kib(mm.SampledMaxDuringBigKiB), mm.Samples)
	if r.Content != nil {
		r.writeContent(p)
	}
	r.writeOpsTable(p)
	p("")
	p("TARGETS (information only, not an exit status)\ttarget\tmeasured")
	for _, t := range r.Targets {
		p("  %s\t%s\t%s\t%s", t.Name, t.Target, t.Measured, map[bool]string{true: "met", false: "NOT MET"}[t.Met])
	}
	p("")
	p("elapsed\t%.1f s", r.ElapsedSeconds)
	return tw.Flush()
}

// writeContent prints the content-store part: one column per side.
func (r *report) writeContent(p func(string, ...any)) {
	o, c := r.Options, r.Content
	p("")
	p("CONTENT STORE, warm (median of %d runs)\tdirect\tstore\tpeer\tstore, upstream down\tpeer, upstream down", o.Runs)
	for _, t := range byImage(o, c.Throughput.BigLayer, c.Throughput.MultiLayer) {
		p("  %s\t%.0f MiB/s\t%.0f MiB/s\t%.0f MiB/s\t%.0f MiB/s\t%.0f MiB/s", t.name, t.v.DirectMiBps, t.v.StoreMiBps, t.v.PeerMiBps, t.v.StoreDownMiBps, t.v.PeerDownMiBps)
		p("    CPU s per GiB of the serving process\t%.2f\t%.2f\t%.2f", t.v.RegistryCPUPerGiB, t.v.StoreCPUPerGiB, t.v.PeerCPUPerGiB)
	}
	for _, l := range []struct {
		name string
		l    sideLatency
	}{{"manifest by tag", c.ByTag}, {"manifest by digest", c.ByDigest}} {
		for _, q := range []struct {
			name string
			f    func(durationStats) float64
		}{{"p50", func(d durationStats) float64 { return d.P50 }}, {"p99", func(d durationStats) float64 { return d.P99 }}} {
			p("  %s %s\t%.3f ms\t%.3f ms\t%.3f ms\t%.3f ms\t%.3f ms", l.name, q.name, q.f(l.l.Direct), q.f(l.l.Store), q.f(l.l.Peer), q.f(l.l.StoreDown), q.f(l.l.PeerDown))
		}
	}
	p("  upstream blob GETs while warm\t\t%d\t%d", c.WarmUpstreamBlobGETs.Store, c.WarmUpstreamBlobGETs.Peer)
	p("  %d concurrent first pulls (%d blobs): upstream blob GETs\t\t%d\t%d", c.Crowd.Clients, c.Crowd.Blobs, c.Crowd.StoreUpstreamBlobGETs, c.Crowd.PeerUpstreamBlobGETs)
	p("  %d concurrent first pulls: until the last finished\t\t%.2f s\t%.2f s", c.Crowd.Clients, c.Crowd.StoreSeconds, c.Crowd.PeerSeconds)
	sm := c.StoreMemory
	p("  1 × %d MiB: kept (first pull), then served from the store\t\t%.0f, %.0f MiB/s", sm.BlobMiB, sm.KeepMiBps, sm.ServeMiBps)
	p("  pullgate VmHWM before, after keeping, after serving\t\t%s, %s, %s", kib(sm.BeforeHWMKiB), kib(sm.AfterKeepHWM), kib(sm.AfterServeHWM))
	p("  largest VmRSS while it streamed from the store\t\t%s (%d samples)", kib(sm.SampledMaxKiB), sm.Samples)
	p("  store size on disk\t\t%.1f MiB", float64(sm.StoreSizeBytes)/mib)
	for _, e := range c.Errors {
		p("  note: %s", e)
	}
}

// named is a value with the name a table row gives it.
type named[T any] struct {
	name string
	v    T
}

// byImage names the big-layer and the multi-layer images' values as the tables do.
func byImage[T any](o *options, big, multi T) []named[T] {
	return []named[T]{
		{fmt.Sprintf("1 layer × %d MiB", o.BigLayerMiB), big},
		{fmt.Sprintf("%d layers × %d MiB", o.Layers, o.LayerMiB), multi},
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func kib(k int64) string { return fmt.Sprintf("%.1f MiB", float64(k)/1024) }

// loadAvg is /proc/loadavg's three load averages, or "n/a".
func loadAvg(read func(string) ([]byte, error)) string {
	b, err := read("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "n/a"
	}
	return strings.Join(f[:3], " ")
}

// cpuModel is the first "model name" of /proc/cpuinfo, or "unknown CPU".
func cpuModel(read func(string) ([]byte, error)) string {
	b, err := read("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
