package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"
)

// coldLayerBytes is the size of the one layer of each image used for cold pulls: the
// blob does not matter there, only the manifest and its signature.
const coldLayerBytes = 4096

// runBench sets everything up, measures, and returns the report. Every process it starts
// is stopped and its temporary folder removed before it returns, whatever happened.
func runBench(ctx context.Context, o *options, progress io.Writer) (_ *report, err error) {
	base, err := startBase(ctx, o, progress, "pullgate-bench-")
	if err != nil {
		return nil, err
	}
	defer base.close()
	logf, dir, regAddr, client := base.logf, base.dir, base.regAddr, base.client
	r := &report{Options: o, Machine: base.machine}
	if o.UpstreamMbit > 0 {
		th, err := startThrottle(regAddr, o.UpstreamMbit)
		if err != nil {
			return nil, err
		}
		defer th.close()
		logf("pacing the registry's answers to %d Mbit/s, on both sides", o.UpstreamMbit)
		regAddr = th.addr()
	}

	push := func(repo, tag string, count int, size int64) (*pushedImage, error) {
		return base.push(ctx, regAddr, repo, tag, count, size)
	}
	logf("pushing and signing bench/big:v1 (1 layer × %d MiB)", o.BigLayerMiB)
	big, err := push("bench/big", "v1", 1, int64(o.BigLayerMiB)*mib)
	if err != nil {
		return nil, err
	}
	logf("pushing and signing bench/multi:v1 (%d layers × %d MiB)", o.Layers, o.LayerMiB)
	multi, err := push("bench/multi", "v1", o.Layers, int64(o.LayerMiB)*mib)
	if err != nil {
		return nil, err
	}
	logf("pushing and signing %d small images for cold pulls", o.Cold)
	cold := make([]*pushedImage, 0, o.Cold)
	for i := range o.Cold {
		img, err := push("bench/cold", fmt.Sprintf("c%d", i), 1, coldLayerBytes)
		if err != nil {
			return nil, err
		}
		cold = append(cold, img)
	}
	var ci contentImages
	if o.Content {
		logf("pushing and signing bench/crowd:v1 (4 layers × %d MiB) and bench/huge:v1 (1 layer × %d MiB) for the content store", o.LayerMiB, o.StoreBlobMiB)
		if ci.crowd, err = push("bench/crowd", "v1", 4, int64(o.LayerMiB)*mib); err != nil {
			return nil, err
		}
		if ci.huge, err = push("bench/huge", "v1", 1, int64(o.StoreBlobMiB)*mib); err != nil {
			return nil, err
		}
	}

	lookaside := &url.URL{Scheme: "file", Path: base.sigDir}
	if o.Lookaside == "http" {
		ls, err := startLookaside(base.sigDir)
		if err != nil {
			return nil, err
		}
		defer ls.close()
		lookaside = ls.url
	}
	trust, err := base.signer.writeTrust(dir, lookaside)
	if err != nil {
		return nil, err
	}

	bin, err := base.pullgate()
	if err != nil {
		return nil, err
	}
	logf("starting pullgate (%s)", bin)
	r.Machine.Pullgate = toolVersion(ctx, bin, "version")
	pg, pgAddr, err := startPullgate(ctx, bin, dir, "pullgate", regAddr, trust, o.ProxyLogLevel, "", client)
	if err != nil {
		return nil, err
	}
	defer pg.stop()
	defer func() {
		if err != nil && pg.exited() {
			err = fmt.Errorf("%w\npullgate exited (%v); its log:\n%s", err, pg.waitErr, pg.logTail())
		}
	}()

	m := measurer{
		p:      newPuller(client, o.ClientHash),
		direct: endpoint{name: "registry", base: "http://" + regAddr + "/v2"},
		proxy:  endpoint{name: "pullgate", base: "http://" + pgAddr + "/v2/" + upstreamName},
		pid:    pg.pid(),
		cpu:    cpuMeter{registryPID: base.reg.pid(), pullgatePID: pg.pid()},
		logf:   logf,
	}
	if err := m.all(ctx, o, r, big, multi, cold); err != nil {
		return nil, err
	}
	if o.Ops {
		if err := measureOps(ctx, o, r, bin, dir, regAddr, base.reg.pid(), trust, m.proxy, pg.pid(), big, multi, logf); err != nil {
			return nil, fmt.Errorf("operations comparison: %w", err)
		}
	}
	if pg.exited() {
		return nil, errors.New("pullgate exited during the benchmark")
	}
	if o.Content {
		env := &benchEnv{dir: dir, regAddr: regAddr, regPID: base.reg.pid(), upstream: base.upstream, client: client,
			pullgate: bin, trust: trust}
		if r.Content, err = m.contentBench(ctx, o, env, big, multi, ci); err != nil {
			return nil, fmt.Errorf("content store: %w", err)
		}
	}
	r.Machine.LoadAvgEnd = loadAvg(os.ReadFile)
	r.ElapsedSeconds = time.Since(base.start).Seconds()
	r.checkTargets()
	return r, nil
}

// benchEnv is what the content-store part needs to start more servers.
type benchEnv struct {
	dir      string
	regAddr  string // the upstream (or the pacing relay in front of it)
	regPID   int
	upstream upstreamCommand
	client   *http.Client
	pullgate string
	trust    *trustFiles
}

// measurer runs the measurements against the two sides.
type measurer struct {
	p             *puller
	direct, proxy endpoint
	pid           int // pullgate's
	cpu           cpuMeter
	logf          func(string, ...any)
}

// all measures in an order that lets pullgate's memory be compared before and after the
// big layer: manifests, cold pulls, the multi-layer blobs, then the big layer.
func (m *measurer) all(ctx context.Context, o *options, r *report, big, multi *pushedImage, cold []*pushedImage) error {
	var err error
	if r.Memory.Startup, err = readMemory(m.pid); err != nil {
		return err
	}
	// A first pull through pullgate admits the images (and their blobs) and warms the
	// verdicts; the cold repository's connection set-up is done by asking for a tag that
	// does not exist, so the cold pulls time signatures, not the first contact.
	for _, img := range []*pushedImage{big, multi} {
		if _, err := m.p.manifest(ctx, m.proxy.manifestURL(img.repo, img.tag)); err != nil {
			return fmt.Errorf("first pull through pullgate: %w", err)
		}
	}
	if len(cold) > 0 {
		if err := m.p.expectStatus(ctx, m.proxy.manifestURL(cold[0].repo, "absent"), http.StatusNotFound); err != nil {
			return err
		}
	}

	m.logf("manifest GETs: %d per side by tag and by digest", o.N)
	r.ManifestLatency.ManifestBytes = multi.manifestBytes
	d, x, err := manifestLatency(ctx, m.p, m.direct, m.proxy, multi.repo, multi.tag, o.N)
	if err != nil {
		return err
	}
	r.ManifestLatency.ByTag = newLatency(d, x)
	if d, x, err = manifestLatency(ctx, m.p, m.direct, m.proxy, multi.repo, multi.digest.String(), o.N); err != nil {
		return err
	}
	r.ManifestLatency.ByDigest = newLatency(d, x)

	m.logf("cold first pulls of %d signed images", len(cold))
	samples, err := coldPulls(ctx, m.p, m.direct, m.proxy, cold)
	if err != nil {
		return err
	}
	r.ColdPull = newCold(samples)

	m.logf("blob throughput: %d layers × %d MiB, %d runs per side", o.Layers, o.LayerMiB, o.Runs)
	d2, x2, err := blobThroughput(ctx, m.p, m.cpu, m.direct, m.proxy, multi.repo, multi.layers, o.Runs)
	if err != nil {
		return err
	}
	r.Throughput.MultiLayer = newThroughput(sumSizes(multi), len(multi.layers), d2, x2)
	if r.Memory.AfterMultiLayer, err = readMemory(m.pid); err != nil {
		return err
	}

	m.logf("blob throughput: 1 layer × %d MiB, %d runs per side", o.BigLayerMiB, o.Runs)
	sampler := startRSSSampler(m.pid)
	d2, x2, err = blobThroughput(ctx, m.p, m.cpu, m.direct, m.proxy, big.repo, big.layers, o.Runs)
	r.Memory.SampledMaxDuringBigKiB, r.Memory.Samples = sampler.stop()
	if err != nil {
		return err
	}
	r.Throughput.BigLayer = newThroughput(sumSizes(big), len(big.layers), d2, x2)
	if r.Memory.AfterBigLayer, err = readMemory(m.pid); err != nil {
		return err
	}
	r.Memory.PeakGrowthKiB = r.Memory.AfterBigLayer.HWMKiB - r.Memory.AfterMultiLayer.HWMKiB
	return nil
}

func sumSizes(img *pushedImage) int64 {
	var n int64
	for _, l := range img.layers {
		n += l.Size
	}
	return n
}
