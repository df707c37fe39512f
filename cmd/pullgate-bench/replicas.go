package main

// -replicas: the content store on the s3 driver (versitygw on 127.0.0.1) against the
// filesystem driver, and replicas sharing one bucket, in one run.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pullgate/pullgate/internal/atonce"
	"github.com/pullgate/pullgate/internal/versitygw"
)

const (
	// replicaCount is how many replicas share the bucket in the burst.
	replicaCount = 3
	// s3Access, s3Secret and s3Region are versitygw's credentials here (loopback only).
	s3Access, s3Secret, s3Region = "pullgatebench", "pullgatebenchsecret", "us-east-1"
	// s3Bucket is the bucket every pullgate on s3 uses, under its own prefix.
	s3Bucket = "pullgate-bench"
)

// replicasReport is what -replicas measures.
type replicasReport struct {
	Options        *options    `json:"options"`
	Machine        machineInfo `json:"machine"`
	ElapsedSeconds float64     `json:"elapsedSeconds"`
	// Warm is blob throughput through one pullgate, content kept: filesystem against s3.
	Warm struct {
		Layers           int       `json:"layers"`
		LayerBytes       int64     `json:"layerBytes"`
		FilesystemMiBps  []float64 `json:"filesystemMiBps"`
		S3MiBps          []float64 `json:"s3MiBps"`
		FilesystemMedian float64   `json:"filesystemMedianMiBps"`
		S3Median         float64   `json:"s3MedianMiBps"`
		UpstreamBlobGETs int       `json:"upstreamBlobGETsDuringWarmRuns"`
	} `json:"warm"`
	// Burst is concurrent first pulls of one image over the replicas.
	Burst struct {
		Clients          int            `json:"clients"`
		Replicas         int            `json:"replicas"`
		Blobs            int            `json:"blobs"`
		Seconds          float64        `json:"seconds"`
		GETsPerBlob      map[string]int `json:"upstreamGETsPerBlob"`
		Min, Max         int            `json:"-"`
		TotalUpstreamGET int            `json:"upstreamBlobGETs"`
	} `json:"burst"`
}

// runReplicas sets up the registry, signed images, versitygw and the pullgates, measures,
// and stops everything before it returns.
func runReplicas(ctx context.Context, o *options, progress io.Writer) (_ *replicasReport, err error) {
	base, err := startBase(ctx, o, progress, "pullgate-bench-replicas-")
	if err != nil {
		return nil, err
	}
	defer base.close()
	logf, dir, client := base.logf, base.dir, base.client
	r := &replicasReport{Options: o, Machine: base.machine}
	counter, err := startCountingRelay(base.regAddr)
	if err != nil {
		return nil, err
	}
	defer counter.close()

	logf("pushing and signing bench/multi:v1 (%d layers × %d MiB) and bench/burst:v1", o.Layers, o.LayerMiB)
	multi, err := base.push(ctx, base.regAddr, "bench/multi", "v1", o.Layers, int64(o.LayerMiB)*mib)
	if err != nil {
		return nil, err
	}
	burst, err := base.push(ctx, base.regAddr, "bench/burst", "v1", o.Layers, int64(o.LayerMiB)*mib)
	if err != nil {
		return nil, err
	}
	ls, err := startLookaside(base.sigDir)
	if err != nil {
		return nil, err
	}
	defer ls.close()
	trust, err := base.signer.writeTrust(dir, ls.url)
	if err != nil {
		return nil, err
	}
	bin, err := base.pullgate()
	if err != nil {
		return nil, err
	}
	r.Machine.Pullgate = toolVersion(ctx, bin, "version")

	logf("starting versitygw")
	s3, err := startVersitygw(ctx, dir, client)
	if err != nil {
		return nil, err
	}
	defer s3.Stop()

	start1 := func(name, storage string) (*process, string, error) {
		return startStoredPullgate(ctx, bin, filepath.Join(dir, name), counter.addr(), trust, storage, o.ProxyLogLevel, client)
	}
	fsPG, fsAddr, err := start1("fs", fmt.Sprintf("    filesystem:\n      rootdirectory: %q\n", filepath.Join(dir, "fs-data")))
	if err != nil {
		return nil, err
	}
	defer fsPG.stop()
	s3PG, s3Addr, err := start1("s3", storageYAML(s3, "/single"))
	if err != nil {
		return nil, err
	}
	defer s3PG.stop()

	fsEnd := endpoint{name: "filesystem", base: "http://" + fsAddr + "/v2/" + upstreamName}
	s3End := endpoint{name: "s3", base: "http://" + s3Addr + "/v2/" + upstreamName}
	p := newPuller(client, o.ClientHash)
	logf("first pull of bench/multi through each store (kept)")
	for _, e := range []endpoint{fsEnd, s3End} {
		if _, err := p.manifest(ctx, e.manifestURL(multi.repo, multi.tag)); err != nil {
			return nil, err
		}
		if _, err := pullBlobs(ctx, p, e, multi.repo, multi.layers); err != nil {
			return nil, err
		}
	}
	before := counter.blobGETs("")
	logf("warm blob throughput: %d layers × %d MiB, %d runs per store", o.Layers, o.LayerMiB, o.Runs)
	fsSide, s3Side, err := blobThroughput(ctx, p, cpuMeter{registryPID: fsPG.pid(), pullgatePID: s3PG.pid()}, fsEnd, s3End, multi.repo, multi.layers, o.Runs)
	if err != nil {
		return nil, err
	}
	r.Warm.Layers, r.Warm.LayerBytes = len(multi.layers), int64(o.LayerMiB)*mib
	r.Warm.FilesystemMiBps, r.Warm.S3MiBps = fsSide.runs, s3Side.runs
	r.Warm.FilesystemMedian, r.Warm.S3Median = median(fsSide.runs), median(s3Side.runs)
	r.Warm.UpstreamBlobGETs = counter.blobGETs("") - before

	logf("starting %d replicas on one bucket", replicaCount)
	var hosts []string
	for i := range replicaCount {
		pg, addr, err := start1(fmt.Sprintf("replica%d", i), storageYAML(s3, "/replicas"))
		if err != nil {
			return nil, err
		}
		defer pg.stop()
		hosts = append(hosts, addr)
	}
	logf("burst: %d clients pull bench/burst:v1 at once, each request to the next replica", o.BurstClients)
	took, err := burstPull(ctx, hosts, burst, o.BurstClients)
	if err != nil {
		return nil, err
	}
	b := &r.Burst
	b.Clients, b.Replicas, b.Blobs, b.Seconds = o.BurstClients, replicaCount, len(burst.layers), took.Seconds()
	b.GETsPerBlob = map[string]int{}
	b.Min = -1
	for _, l := range burst.layers {
		n := counter.blobGETs("/" + burst.repo + "/blobs/" + l.Digest.String())
		b.GETsPerBlob[l.Digest.String()] = n
		b.TotalUpstreamGET += n
		if b.Min < 0 || n < b.Min {
			b.Min = n
		}
		b.Max = max(b.Max, n)
	}
	r.Machine.LoadAvgEnd = loadAvg(os.ReadFile)
	r.ElapsedSeconds = time.Since(base.start).Seconds()
	return r, nil
}

// burstPull starts clients goroutines at once; each GETs the manifest and then every
// layer, every request to the next replica in turn, and checks each body.
func burstPull(ctx context.Context, hosts []string, img *pushedImage, clients int) (time.Duration, error) {
	var next atomic.Uint64
	pick := func() endpoint {
		h := hosts[int(next.Add(1)-1)%len(hosts)]
		return endpoint{base: "http://" + h + "/v2/" + upstreamName}
	}
	took, errs := atonce.Run(clients, func(ready <-chan struct{}) error {
		c := newHTTPClient()
		defer c.CloseIdleConnections()
		p := newPuller(c, true)
		<-ready
		if _, err := p.manifest(ctx, pick().manifestURL(img.repo, img.tag)); err != nil {
			return err
		}
		for _, l := range img.layers {
			if _, err := p.blob(ctx, pick().blobURL(img.repo, l.Digest), l); err != nil {
				return err
			}
		}
		return nil
	})
	return took, errors.Join(errs...)
}

// startStoredPullgate starts pullgate in dir (configuration and log there) with storage as
// its content store's storage entry.
func startStoredPullgate(ctx context.Context, bin, dir, upstreamAddr string, f *trustFiles, storage, logLevel string, client *http.Client) (*process, string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	return startPullgate(ctx, bin, dir, "pullgate", upstreamAddr, f, logLevel, "content:\n  storage:\n"+storage, client)
}

// countingRelay stands between the caches (pullgates, the peer) and the registry and
// counts the blob GETs that reach the registry.
type countingRelay struct {
	ln   net.Listener
	srv  *http.Server
	mu   sync.Mutex
	gets map[string]int // by path
}

func startCountingRelay(target string) (*countingRelay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &countingRelay{ln: ln, gets: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	rp.FlushInterval = -1
	c.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			c.mu.Lock()
			c.gets[r.URL.Path]++
			c.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	}), ReadHeaderTimeout: readyTimeout}
	go c.srv.Serve(ln)
	return c, nil
}

func (c *countingRelay) addr() string { return c.ln.Addr().String() }

// blobGETs counts the blob GETs whose path contains part ("" for all).
func (c *countingRelay) blobGETs(part string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for p, k := range c.gets {
		if strings.Contains(p, part) {
			n += k
		}
	}
	return n
}

// close makes the upstream unreachable for whoever used this relay: connections are
// refused from now on.
func (c *countingRelay) close() { _ = c.srv.Close() }

// startVersitygw starts versitygw (an S3 server, its posix backend in the benchmark's
// folder; hack/install-test-tools.sh installs it) and makes the bucket.
func startVersitygw(ctx context.Context, dir string, client *http.Client) (*versitygw.Server, error) {
	s3, err := versitygw.Start(ctx, versitygw.Options{
		DataDir: filepath.Join(dir, "s3-data"), LogPath: filepath.Join(dir, "versitygw.log"),
		AccessKey: s3Access, SecretKey: s3Secret, Region: s3Region,
		Client: client, SysProcAttr: childAttrs(),
	})
	if err != nil {
		return nil, err
	}
	if err := s3.CreateBucket(ctx, s3Bucket); err != nil {
		s3.Stop()
		return nil, fmt.Errorf("versitygw: %w", err)
	}
	return s3, nil
}

// storageYAML is the content.storage entry naming the s3 driver on s3's bucket under prefix.
func storageYAML(s3 *versitygw.Server, prefix string) string {
	params := s3.DriverParams(s3Bucket, prefix)
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("    s3:\n")
	for _, k := range keys {
		j, _ := json.Marshal(params[k])
		fmt.Fprintf(&b, "      %s: %s\n", k, j)
	}
	return b.String()
}

func (r *replicasReport) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *replicasReport) writeTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "pullgate-bench -replicas: %d CPUs (%s), %s, load %s → %s, %.0f s\n", r.Machine.CPUs, r.Machine.CPUModel,
		r.Machine.GoVersion, r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd, r.ElapsedSeconds)
	fmt.Fprintf(&b, "\nwarm blob throughput through one pullgate (%d layers × %d MiB, content kept, median of %d runs):\n",
		r.Warm.Layers, r.Warm.LayerBytes/mib, len(r.Warm.S3MiBps))
	fmt.Fprintf(&b, "  filesystem driver  %8.1f MiB/s  runs %s\n", r.Warm.FilesystemMedian, runsList(r.Warm.FilesystemMiBps))
	fmt.Fprintf(&b, "  s3 driver          %8.1f MiB/s  runs %s\n", r.Warm.S3Median, runsList(r.Warm.S3MiBps))
	fmt.Fprintf(&b, "  upstream blob GETs during the warm runs: %d\n", r.Warm.UpstreamBlobGETs)
	fmt.Fprintf(&b, "\n%d concurrent first pulls over %d replicas on one bucket (%d layers, %.1f s):\n",
		r.Burst.Clients, r.Burst.Replicas, r.Burst.Blobs, r.Burst.Seconds)
	fmt.Fprintf(&b, "  upstream GETs per blob: min %d, max %d, %.2f on average (%d in all)\n", r.Burst.Min, r.Burst.Max,
		float64(r.Burst.TotalUpstreamGET)/float64(max(r.Burst.Blobs, 1)), r.Burst.TotalUpstreamGET)
	_, err := io.WriteString(w, b.String())
	return err
}

func runsList(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, " ")
}
