package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// warmupRequests are sent to each side before latency samples are taken (connections,
// caches, the verdict), and not counted.
const warmupRequests = 20

// durationStats summarises latency samples, in milliseconds.
type durationStats struct {
	P50  float64 `json:"p50Ms"`
	P90  float64 `json:"p90Ms"`
	P99  float64 `json:"p99Ms"`
	Mean float64 `json:"meanMs"`
}

func summarise(samples []time.Duration) durationStats {
	ms := make([]float64, len(samples))
	var sum float64
	for i, s := range samples {
		ms[i] = float64(s) / float64(time.Millisecond)
		sum += ms[i]
	}
	slices.Sort(ms)
	return durationStats{
		P50:  percentile(ms, 50),
		P90:  percentile(ms, 90),
		P99:  percentile(ms, 99),
		Mean: sum / float64(len(ms)),
	}
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// pair runs one measurement against both sides, alternating which goes first so that
// neither side is always the one that follows the other's work.
func pair(i int, direct, proxied func() error) error {
	first, second := direct, proxied
	if i%2 == 1 {
		first, second = proxied, direct
	}
	if err := first(); err != nil {
		return err
	}
	return second()
}

// manifestLatency times n manifest GETs of repo:ref on each side, interleaved.
func manifestLatency(ctx context.Context, p *puller, direct, proxied endpoint, repo, ref string, n int) (d, x []time.Duration, err error) {
	du, xu := direct.manifestURL(repo, ref), proxied.manifestURL(repo, ref)
	for range min(n, warmupRequests) {
		if _, err := p.manifest(ctx, du); err != nil {
			return nil, nil, err
		}
		if _, err := p.manifest(ctx, xu); err != nil {
			return nil, nil, err
		}
	}
	d, x = make([]time.Duration, 0, n), make([]time.Duration, 0, n)
	for i := range n {
		err := pair(i,
			func() error { t, err := p.manifest(ctx, du); d = append(d, t); return err },
			func() error { t, err := p.manifest(ctx, xu); x = append(x, t); return err })
		if err != nil {
			return nil, nil, err
		}
	}
	return d, x, nil
}

// pullBlobs GETs every blob of layers from e in order and returns the throughput in MiB/s
// over the whole sequence.
func pullBlobs(ctx context.Context, p *puller, e endpoint, repo string, layers []v1.Descriptor) (float64, error) {
	var total time.Duration
	var bytes int64
	for _, l := range layers {
		t, err := p.blob(ctx, e.blobURL(repo, l.Digest), l)
		if err != nil {
			return 0, err
		}
		total += t
		bytes += l.Size
	}
	return float64(bytes) / mib / total.Seconds(), nil
}

// transferSide is what one side's blob transfers measured.
type transferSide struct {
	runs  []float64 // MiB/s of each run
	cpu   cpuTimes  // CPU used by each party, summed over the runs
	bytes int64     // bytes transferred, summed over the runs
}

// blobThroughput pulls layers from each side runs times, interleaved, with one meter for
// both sides.
func blobThroughput(ctx context.Context, p *puller, meter cpuMeter, direct, proxied endpoint, repo string, layers []v1.Descriptor, runs int) (d, x transferSide, err error) {
	return pairedThroughput(ctx, p, meter, meter, direct, proxied, repo, layers, runs)
}

// coldSample is the first pull of one freshly signed image.
type coldSample struct {
	direct, proxyFirst, proxyWarm time.Duration
}

// coldPulls times, for each image (never requested through pullgate before): a direct
// manifest GET by tag, the first GET through pullgate (signatures fetched and verified),
// and a second GET through pullgate (verdict cached).
func coldPulls(ctx context.Context, p *puller, direct, proxied endpoint, images []*pushedImage) ([]coldSample, error) {
	out := make([]coldSample, 0, len(images))
	for _, img := range images {
		var s coldSample
		var err error
		if s.direct, err = p.manifest(ctx, direct.manifestURL(img.repo, img.tag)); err != nil {
			return nil, err
		}
		if s.proxyFirst, err = p.manifest(ctx, proxied.manifestURL(img.repo, img.tag)); err != nil {
			return nil, fmt.Errorf("first pull of %s:%s through pullgate: %w", img.repo, img.tag, err)
		}
		if s.proxyWarm, err = p.manifest(ctx, proxied.manifestURL(img.repo, img.tag)); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}
