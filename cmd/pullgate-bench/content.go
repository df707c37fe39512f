package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullgate/pullgate/internal/atonce"
)

// The content-store part of the benchmark (issue 10): pullgate with a filesystem content
// store, warm, against the direct pull and against distribution's registry in proxy mode
// (a pull-through cache, the mirror sites run today) on the same images; the same
// pullgate restarted with the upstream gone; concurrent first pulls counting the blob
// GETs that reach the upstream; pullgate's memory while a large blob streams from the
// store.

// storeTagTTL is the tagTTL of the warm side: long enough that every warm GET by tag is
// answered from the store. The upstream-down side runs with tagTTL 0, so that each GET
// by tag tries the upstream, is refused, and falls back to the last confirmed digest.
const storeTagTTL = "1h"

// peerSection makes distribution's configuration (registryConfig) proxy mode: a
// pull-through cache of remoteurl.
const peerSection = `proxy:
  remoteurl: %q
  ttl: 168h
`

// contentSection is pullgate's content store configuration for the store side.
const contentSection = `content:
  storage:
    filesystem:
      rootdirectory: %q
  tagTTL: %s
`

// contentResult is what the content-store part measured. Throughputs are medians over
// the runs, MiB/s; a side that could not be measured (the peer with its upstream down,
// when it refuses) is 0 with the reason in Errors.
type contentResult struct {
	Throughput struct {
		BigLayer   sideThroughput `json:"bigLayer"`
		MultiLayer sideThroughput `json:"multiLayer"`
	} `json:"throughput"`
	ByTag    sideLatency `json:"manifestByTag"`
	ByDigest sideLatency `json:"manifestByDigest"`
	// WarmUpstreamBlobGETs are the blob GETs that reached the upstream from the store
	// side and from the peer during the warm measurements (0 when both are warm).
	WarmUpstreamBlobGETs struct {
		Store int64 `json:"store"`
		Peer  int64 `json:"peer"`
	} `json:"warmUpstreamBlobGETs"`
	Crowd       crowdResult `json:"concurrentFirstPulls"`
	StoreMemory storeMemory `json:"storeMemory"`
	Errors      []string    `json:"errors,omitempty"`
}

// sideThroughput is one image's blobs from each side.
type sideThroughput struct {
	DirectMiBps       float64 `json:"directMiBps"`
	StoreMiBps        float64 `json:"storeMiBps"`
	PeerMiBps         float64 `json:"peerMiBps"`
	StoreDownMiBps    float64 `json:"storeUpstreamDownMiBps"`
	PeerDownMiBps     float64 `json:"peerUpstreamDownMiBps"`
	StoreCPUPerGiB    float64 `json:"storeCPUSecondsPerGiB"` // pullgate's, serving from the store
	PeerCPUPerGiB     float64 `json:"peerCPUSecondsPerGiB"`
	RegistryCPUPerGiB float64 `json:"directCPUSecondsPerGiB"` // the registry's, serving directly
}

// downLatencySamples and downWarmup bound the manifest GETs with the upstream down: each
// GET by tag first tries the upstream, which takes pullgate over a second per request
// (measured: 1.1 to 1.6 s with the connection refused), so -n of them would take minutes.
const (
	downLatencySamples = 20
	downWarmup         = 2
)

// sideLatency is warm manifest GETs from each side.
type sideLatency struct {
	Samples     int           `json:"samples"`
	DownSamples int           `json:"upstreamDownSamples"`
	Direct      durationStats `json:"direct"`
	Store       durationStats `json:"store"`
	Peer        durationStats `json:"peer"`
	StoreDown   durationStats `json:"storeUpstreamDown"`
	PeerDown    durationStats `json:"peerUpstreamDown"`
}

// crowdResult is concurrent first pulls of one never-seen image.
type crowdResult struct {
	Clients               int     `json:"clients"`
	Blobs                 int     `json:"blobs"` // config and layers
	StoreUpstreamBlobGETs int64   `json:"storeUpstreamBlobGETs"`
	PeerUpstreamBlobGETs  int64   `json:"peerUpstreamBlobGETs"`
	StoreSeconds          float64 `json:"storeSeconds"` // until the last client finished
	PeerSeconds           float64 `json:"peerSeconds"`
}

// storeMemory is the store side's memory around one large blob: kept (first pull, from
// the upstream into the store) and then served from the store.
type storeMemory struct {
	BlobMiB        int     `json:"blobMiB"`
	BeforeHWMKiB   int64   `json:"beforeHWMKiB"`
	AfterKeepHWM   int64   `json:"afterKeepHWMKiB"`
	AfterServeHWM  int64   `json:"afterServeHWMKiB"`
	SampledMaxKiB  int64   `json:"sampledMaxDuringServeKiB"`
	Samples        int64   `json:"samples"`
	KeepMiBps      float64 `json:"keepMiBps"`  // the first pull, through to the upstream
	ServeMiBps     float64 `json:"serveMiBps"` // from the store
	StoreSizeBytes int64   `json:"storeSizeBytes"`
}

// startPeer starts distribution's registry in proxy mode in front of remote.
func startPeer(ctx context.Context, up upstreamCommand, dir, remote string, client *http.Client) (*process, string, error) {
	return startDistribution(ctx, up, dir, "peer", fmt.Sprintf(peerSection, "http://"+remote), client)
}

// side is one endpoint with the process serving it (whose CPU is measured).
type side struct {
	endpoint
	pid int
}

// throughputSides GETs every layer from each side runs times, rotating which side goes
// first; it returns the median MiB/s and the serving process's CPU seconds per GiB.
func throughputSides(ctx context.Context, p *puller, sides []side, repo string, layers []v1.Descriptor, runs int) (mibps, cpu []float64, err error) {
	var size int64
	for _, l := range layers {
		size += l.Size
	}
	samples := make([][]float64, len(sides))
	cpuUsed := make([]time.Duration, len(sides))
	for i := range runs {
		for k := range sides {
			j := (i + k) % len(sides)
			before, _ := processCPU(sides[j].pid)
			v, err := pullBlobs(ctx, p, sides[j].endpoint, repo, layers)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", sides[j].name, err)
			}
			after, _ := processCPU(sides[j].pid)
			cpuUsed[j] += after - before
			samples[j] = append(samples[j], v)
		}
	}
	gib := float64(size) * float64(runs) / (1 << 30)
	for j := range sides {
		mibps = append(mibps, median(samples[j]))
		cpu = append(cpu, cpuUsed[j].Seconds()/gib)
	}
	return mibps, cpu, nil
}

// latencySides times n manifest GETs of repo:ref on each side, rotating the order, after
// warmup GETs.
func latencySides(ctx context.Context, p *puller, sides []side, repo, ref string, n, warmup int) ([]durationStats, error) {
	samples := make([][]time.Duration, len(sides))
	for i := range warmup + n {
		for k := range sides {
			j := (i + k) % len(sides)
			t, err := p.manifest(ctx, sides[j].manifestURL(repo, ref))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", sides[j].name, err)
			}
			if i >= warmup {
				samples[j] = append(samples[j], t)
			}
		}
	}
	out := make([]durationStats, len(sides))
	for j := range sides {
		out[j] = summarise(samples[j])
	}
	return out, nil
}

// pullImage GETs img's manifest by tag and every blob from e, checking sizes (and
// digests when the puller hashes).
func pullImage(ctx context.Context, p *puller, e endpoint, img *pushedImage) error {
	if _, err := p.manifest(ctx, e.manifestURL(img.repo, img.tag)); err != nil {
		return err
	}
	for _, b := range img.blobs() {
		if _, err := p.blob(ctx, e.blobURL(img.repo, b.Digest), b); err != nil {
			return err
		}
	}
	return nil
}

// crowdPull runs clients concurrent pulls of img from e (each client hashes what it
// reads) and returns how long the slowest took.
func crowdPull(ctx context.Context, client *http.Client, e endpoint, img *pushedImage, clients int) (time.Duration, error) {
	took, errs := atonce.Run(clients, func(start <-chan struct{}) error {
		p := newPuller(client, true)
		<-start
		return pullImage(ctx, p, e, img)
	})
	return took, errors.Join(errs...)
}

// dirSize is the total size of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// contentImages are the images the content part pushes besides big and multi.
type contentImages struct {
	crowd, huge *pushedImage
}

// contentBench measures the content store. It runs last: it stops the upstream.
func (m *measurer) contentBench(ctx context.Context, o *options, env *benchEnv, big, multi *pushedImage, ci contentImages) (*contentResult, error) {
	res := &contentResult{}
	cntStore, err := startCountingRelay(env.regAddr)
	if err != nil {
		return nil, err
	}
	defer cntStore.close()
	cntPeer, err := startCountingRelay(env.regAddr)
	if err != nil {
		return nil, err
	}
	defer cntPeer.close()

	m.logf("starting distribution's registry in proxy mode (the peer) and pullgate with a content store")
	peer, peerAddr, err := startPeer(ctx, env.upstream, env.dir, cntPeer.addr(), env.client)
	if err != nil {
		return nil, err
	}
	defer peer.stop()
	storeDir := filepath.Join(env.dir, "store")
	startStore := func(name, tagTTL string) (*process, string, error) {
		return startPullgate(ctx, env.pullgate, env.dir, name, cntStore.addr(), env.trust, o.ProxyLogLevel,
			fmt.Sprintf(contentSection, storeDir, tagTTL), env.client)
	}
	store, storeAddr, err := startStore("pullgate-store", storeTagTTL)
	if err != nil {
		return nil, err
	}
	defer store.stop()

	direct := side{m.direct, env.regPID}
	storeSide := side{endpoint{name: "pullgate with a store", base: "http://" + storeAddr + "/v2/" + upstreamName}, store.pid()}
	peerSide := side{endpoint{name: "distribution proxy", base: "http://" + peerAddr + "/v2"}, peer.pid()}

	m.logf("filling the store and the peer with bench/big and bench/multi")
	for _, s := range []side{storeSide, peerSide} {
		for _, img := range []*pushedImage{big, multi} {
			if err := pullImage(ctx, m.p, s.endpoint, img); err != nil {
				return nil, fmt.Errorf("first pull through %s: %w", s.name, err)
			}
		}
	}

	storeGETs, peerGETs := int64(cntStore.blobGETs("")), int64(cntPeer.blobGETs(""))
	warm := []side{direct, storeSide, peerSide}
	for _, t := range []struct {
		img *pushedImage
		out *sideThroughput
	}{{multi, &res.Throughput.MultiLayer}, {big, &res.Throughput.BigLayer}} {
		m.logf("warm blob throughput from the store and the peer: %s, %d runs per side", t.img.repo, o.Runs)
		v, cpu, err := throughputSides(ctx, m.p, warm, t.img.repo, t.img.layers, o.Runs)
		if err != nil {
			return nil, err
		}
		t.out.DirectMiBps, t.out.StoreMiBps, t.out.PeerMiBps = v[0], v[1], v[2]
		t.out.RegistryCPUPerGiB, t.out.StoreCPUPerGiB, t.out.PeerCPUPerGiB = cpu[0], cpu[1], cpu[2]
	}
	m.logf("warm manifest GETs from the store and the peer: %d per side by tag and by digest", o.N)
	for _, l := range []struct {
		ref string
		out *sideLatency
	}{{multi.tag, &res.ByTag}, {multi.digest.String(), &res.ByDigest}} {
		st, err := latencySides(ctx, m.p, warm, multi.repo, l.ref, o.N, min(o.N, warmupRequests))
		if err != nil {
			return nil, err
		}
		l.out.Samples, l.out.Direct, l.out.Store, l.out.Peer = o.N, st[0], st[1], st[2]
	}
	res.WarmUpstreamBlobGETs.Store = int64(cntStore.blobGETs("")) - storeGETs
	res.WarmUpstreamBlobGETs.Peer = int64(cntPeer.blobGETs("")) - peerGETs

	m.logf("%d concurrent first pulls of %s through the store and through the peer", o.Crowd, ci.crowd.repo)
	res.Crowd.Clients, res.Crowd.Blobs = o.Crowd, len(ci.crowd.blobs())
	for _, c := range []struct {
		s    side
		cnt  *countingRelay
		gets *int64
		secs *float64
	}{{storeSide, cntStore, &res.Crowd.StoreUpstreamBlobGETs, &res.Crowd.StoreSeconds},
		{peerSide, cntPeer, &res.Crowd.PeerUpstreamBlobGETs, &res.Crowd.PeerSeconds}} {
		before := int64(c.cnt.blobGETs(""))
		took, err := crowdPull(ctx, env.client, c.s.endpoint, ci.crowd, o.Crowd)
		if err != nil {
			return nil, fmt.Errorf("concurrent first pulls through %s: %w", c.s.name, err)
		}
		*c.gets, *c.secs = int64(c.cnt.blobGETs(""))-before, took.Seconds()
	}

	m.logf("pullgate's memory while 1 × %d MiB is kept, then served from the store", o.StoreBlobMiB)
	sm := &res.StoreMemory
	sm.BlobMiB = o.StoreBlobMiB
	before, err := readMemory(store.pid())
	if err != nil {
		return nil, err
	}
	sm.BeforeHWMKiB = before.HWMKiB
	if _, err := m.p.manifest(ctx, storeSide.manifestURL(ci.huge.repo, ci.huge.tag)); err != nil {
		return nil, err
	}
	if sm.KeepMiBps, err = pullBlobs(ctx, m.p, storeSide.endpoint, ci.huge.repo, ci.huge.layers); err != nil {
		return nil, err
	}
	kept, err := readMemory(store.pid())
	if err != nil {
		return nil, err
	}
	sm.AfterKeepHWM = kept.HWMKiB
	sampler := startRSSSampler(store.pid())
	sm.ServeMiBps, err = pullBlobs(ctx, m.p, storeSide.endpoint, ci.huge.repo, ci.huge.layers)
	sm.SampledMaxKiB, sm.Samples = sampler.stop()
	if err != nil {
		return nil, err
	}
	served, err := readMemory(store.pid())
	if err != nil {
		return nil, err
	}
	sm.AfterServeHWM = served.HWMKiB
	sm.StoreSizeBytes = dirSize(storeDir)

	m.logf("upstream down: the registry is unreachable; pullgate restarted on the same store with tagTTL 0")
	cntStore.close()
	cntPeer.close()
	store.stop()
	down, downAddr, err := startStore("pullgate-store-down", "0s")
	if err != nil {
		return nil, err
	}
	defer down.stop()
	downSide := side{endpoint{name: "pullgate, upstream down", base: "http://" + downAddr + "/v2/" + upstreamName}, down.pid()}
	peerDown := side{endpoint{name: "distribution proxy, upstream down", base: peerSide.base}, peer.pid()}
	for _, t := range []struct {
		img *pushedImage
		out *sideThroughput
	}{{multi, &res.Throughput.MultiLayer}, {big, &res.Throughput.BigLayer}} {
		// Admit the blobs in the new process (the verdict comes from the kept signatures
		// if the lookaside is a file, else from the lookaside, which is still up).
		if _, err := m.p.manifest(ctx, downSide.manifestURL(t.img.repo, t.img.tag)); err != nil {
			return nil, fmt.Errorf("upstream down, %s:%s through pullgate: %w", t.img.repo, t.img.tag, err)
		}
		v, _, err := throughputSides(ctx, m.p, []side{downSide}, t.img.repo, t.img.layers, o.Runs)
		if err != nil {
			return nil, err
		}
		t.out.StoreDownMiBps = v[0]
		if v, _, err := throughputSides(ctx, m.p, []side{peerDown}, t.img.repo, t.img.layers, o.Runs); err != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("peer, upstream down, %s blobs: %v", t.img.repo, err))
		} else {
			t.out.PeerDownMiBps = v[0]
		}
	}
	for _, l := range []struct {
		ref string
		out *sideLatency
	}{{multi.tag, &res.ByTag}, {multi.digest.String(), &res.ByDigest}} {
		n := min(o.N, downLatencySamples)
		l.out.DownSamples = n
		st, err := latencySides(ctx, m.p, []side{downSide}, multi.repo, l.ref, n, downWarmup)
		if err != nil {
			return nil, err
		}
		l.out.StoreDown = st[0]
		if st, err := latencySides(ctx, m.p, []side{peerDown}, multi.repo, l.ref, n, downWarmup); err != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("peer, upstream down, manifest %s: %v", l.ref, err))
		} else {
			l.out.PeerDown = st[0]
		}
	}
	if down.exited() {
		return nil, errors.New("pullgate (upstream down) exited during the benchmark")
	}
	return res, nil
}
