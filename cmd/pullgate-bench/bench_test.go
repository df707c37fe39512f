package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs the whole benchmark with tiny sizes against the real registry binary and
// a freshly built pullgate, and checks that the report is complete. It asserts nothing
// about the figures: they depend on the machine.
// TestMain lets the test binary serve as the upstream registry too: the benchmark starts
// its own executable in registry mode, and under `go test` that is this binary.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == serveRegistryArg {
		os.Exit(serveRegistry(os.Args[2], os.Stderr))
	}
	os.Exit(m.Run())
}

func TestSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := []string{"-big-layer-mib", "2", "-layers", "3", "-layer-mib", "1", "-n", "10", "-runs", "2", "-cold", "2", "-store-blob-mib", "2", "-crowd", "4", "-json"}
	if code := run(ctx, args, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit status %d, stderr:\n%s", code, stderr.String())
	}

	var r report
	dec := json.NewDecoder(bytes.NewReader(stdout.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("decoding the JSON report: %v\n%s", err, stdout.String())
	}
	positive := map[string]float64{
		"throughput.bigLayer.directMiBps":        r.Throughput.BigLayer.DirectMiBps,
		"throughput.bigLayer.proxyMiBps":         r.Throughput.BigLayer.ProxyMiBps,
		"throughput.bigLayer.ratio":              r.Throughput.BigLayer.Ratio,
		"throughput.multiLayer.directMiBps":      r.Throughput.MultiLayer.DirectMiBps,
		"throughput.multiLayer.proxyMiBps":       r.Throughput.MultiLayer.ProxyMiBps,
		"throughput.multiLayer.ratio":            r.Throughput.MultiLayer.Ratio,
		"manifestLatency.byTag.direct.p50":       r.ManifestLatency.ByTag.Direct.P50,
		"manifestLatency.byTag.direct.p99":       r.ManifestLatency.ByTag.Direct.P99,
		"manifestLatency.byTag.proxy.p50":        r.ManifestLatency.ByTag.Proxy.P50,
		"manifestLatency.byTag.proxy.mean":       r.ManifestLatency.ByTag.Proxy.Mean,
		"manifestLatency.byTag.ratioP50":         r.ManifestLatency.ByTag.RatioP50,
		"manifestLatency.byDigest.direct.p90":    r.ManifestLatency.ByDigest.Direct.P90,
		"manifestLatency.byDigest.proxy.p90":     r.ManifestLatency.ByDigest.Proxy.P90,
		"manifestLatency.byDigest.ratioMean":     r.ManifestLatency.ByDigest.RatioMean,
		"coldPull.directMs":                      r.ColdPull.DirectMs,
		"coldPull.proxyFirstMs":                  r.ColdPull.ProxyFirstMs,
		"coldPull.proxyWarmMs":                   r.ColdPull.ProxyWarmMs,
		"pullgateMemory.startup.hwmKiB":          float64(r.Memory.Startup.HWMKiB),
		"pullgateMemory.afterMultiLayer.hwmKiB":  float64(r.Memory.AfterMultiLayer.HWMKiB),
		"pullgateMemory.afterBigLayer.hwmKiB":    float64(r.Memory.AfterBigLayer.HWMKiB),
		"pullgateMemory.afterBigLayer.rssKiB":    float64(r.Memory.AfterBigLayer.RSSKiB),
		"pullgateMemory.sampledMaxDuringBigKiB":  float64(r.Memory.SampledMaxDuringBigKiB),
		"manifestLatency.manifestBytes":          float64(r.ManifestLatency.ManifestBytes),
		"elapsedSeconds":                         r.ElapsedSeconds,
		"throughput.bigLayer.bytes":              float64(r.Throughput.BigLayer.Bytes),
		"throughput.multiLayer.blobs":            float64(r.Throughput.MultiLayer.Blobs),
		"throughput.multiLayer.directRuns count": float64(len(r.Throughput.MultiLayer.DirectRuns)),
	}
	for name, v := range positive {
		if !(v > 0) || math.IsInf(v, 0) {
			t.Errorf("%s = %v, want a positive number", name, v)
		}
	}
	if got := r.Throughput.MultiLayer.Blobs; got != 3 {
		t.Errorf("multi-layer blobs = %d, want 3", got)
	}
	if got := len(r.Throughput.BigLayer.ProxyRuns); got != 2 {
		t.Errorf("big layer proxy runs = %d, want 2", got)
	}
	if r.ManifestLatency.ByTag.Samples != 10 || r.ColdPull.Images != 2 {
		t.Errorf("samples = %d, cold images = %d, want 10 and 2", r.ManifestLatency.ByTag.Samples, r.ColdPull.Images)
	}
	if r.Machine.CPUs < 1 || r.Machine.Registry == "" || r.Machine.Pullgate == "" || r.Machine.LoadAvgEnd == "" {
		t.Errorf("machine = %+v, want every field", r.Machine)
	}
	if c := r.Content; c == nil {
		t.Error("no content-store part in the report")
	} else {
		for name, v := range map[string]float64{
			"content.throughput.bigLayer.storeMiBps":               c.Throughput.BigLayer.StoreMiBps,
			"content.throughput.bigLayer.peerMiBps":                c.Throughput.BigLayer.PeerMiBps,
			"content.throughput.multiLayer.storeUpstreamDownMiBps": c.Throughput.MultiLayer.StoreDownMiBps,
			"content.manifestByTag.store.p50":                      c.ByTag.Store.P50,
			"content.manifestByDigest.storeUpstreamDown.p50":       c.ByDigest.StoreDown.P50,
			"content.concurrentFirstPulls.storeUpstreamBlobGETs":   float64(c.Crowd.StoreUpstreamBlobGETs),
			"content.storeMemory.serveMiBps":                       c.StoreMemory.ServeMiBps,
			"content.storeMemory.afterServeHWMKiB":                 float64(c.StoreMemory.AfterServeHWM),
		} {
			if !(v > 0) || math.IsInf(v, 0) {
				t.Errorf("%s = %v, want a positive number", name, v)
			}
		}
		if c.Crowd.Clients != 4 || c.Crowd.Blobs != 5 {
			t.Errorf("crowd: %d clients, %d blobs, want 4 and 5", c.Crowd.Clients, c.Crowd.Blobs)
		}
	}
	if len(r.Targets) != 12 {
		t.Fatalf("%d targets, want 12: %+v", len(r.Targets), r.Targets)
	}
	for _, tc := range r.Targets {
		if tc.Name == "" || tc.Target == "" || tc.Measured == "" {
			t.Errorf("incomplete target %+v", tc)
		}
	}

	// The table shows the same report.
	var table bytes.Buffer
	r.Options = &options{BigLayerMiB: 2, Layers: 3, LayerMiB: 1, N: 10, Runs: 2, Cold: 2, Lookaside: "http"}
	if err := r.writeTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"BLOB THROUGHPUT", "MANIFEST GET", "COLD FIRST PULL", "PULLGATE MEMORY", "TARGETS", "by digest p99",
		"CONTENT STORE", "concurrent first pulls"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

func TestParseOptions(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string // empty: valid
	}{
		{args: nil},
		{args: []string{"-big-layer-mib", "1", "-layers", "1", "-layer-mib", "1", "-lookaside", "file"}},
		{args: []string{"-big-layer-mib", "0"}, wantErr: "-big-layer-mib must be between 1 and"},
		{args: []string{"-runs", "-1"}, wantErr: "-runs must be between 1 and"},
		{args: []string{"-layers", "256", "-layer-mib", "1000"}, wantErr: "-layers × -layer-mib must be at most"},
		{args: []string{"-lookaside", "ftp"}, wantErr: `-lookaside must be http or file, not "ftp"`},
		{args: []string{"-proxy-log-level", "loud"}, wantErr: `-proxy-log-level must be debug, info, warn or error`},
		{args: []string{"extra"}, wantErr: `unexpected arguments ["extra"]`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := parseOptions(tt.args, &bytes.Buffer{})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestStatistics(t *testing.T) {
	var samples []time.Duration
	for i := 1; i <= 100; i++ {
		samples = append(samples, time.Duration(i)*time.Millisecond)
	}
	got := summarise(samples)
	want := durationStats{P50: 50, P90: 90, P99: 99, Mean: 50.5}
	if got != want {
		t.Errorf("summarise(1..100 ms) = %+v, want %+v", got, want)
	}
	for _, tt := range []struct {
		in   []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{7}, 7}} {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing is not NaN")
	}
}

func TestProcReaders(t *testing.T) {
	m, err := readMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSSKiB <= 0 || m.HWMKiB < m.RSSKiB {
		t.Errorf("readMemory = %+v, want 0 < VmRSS ≤ VmHWM", m)
	}
	// Burn a little CPU so that at least one clock tick is counted.
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) {
	}
	if d, err := processCPU(os.Getpid()); err != nil || d <= 0 {
		t.Errorf("processCPU = %v, %v, want a positive duration", d, err)
	}
}
