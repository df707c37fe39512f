package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// options are the benchmark's flags.
type options struct {
	// BigLayerMiB is the size of the single layer of the "big" image.
	BigLayerMiB int `json:"bigLayerMiB"`
	// Layers and LayerMiB shape the multi-layer image.
	Layers   int `json:"layers"`
	LayerMiB int `json:"layerMiB"`
	// N is the number of manifest GETs per side and reference kind (latency samples).
	N int `json:"n"`
	// Runs is how often each blob transfer is repeated per side; the median is reported.
	Runs int `json:"runs"`
	// Cold is the number of fresh signed images whose first pull is timed.
	Cold int `json:"cold"`
	// ClientHash makes the client hash every blob body (sha256, checked against the
	// digest) instead of only discarding it, on both sides alike.
	ClientHash bool `json:"clientHash"`
	// Lookaside is where pullgate reads the signatures: "http" (a server in this
	// process) or "file".
	Lookaside string `json:"lookaside"`
	// UpstreamMbit, when not zero, puts a relay paced to that many Mbit/s between the
	// registry and both sides: a network-bound upstream instead of the loopback's CPU.
	UpstreamMbit int `json:"upstreamMbit"`
	// ProxyLogLevel is pullgate's log.level.
	ProxyLogLevel string `json:"proxyLogLevel"`
	// Content adds the content-store part (issue 10): pullgate with a filesystem store,
	// warm and with the upstream down, against distribution's registry in proxy mode.
	Content bool `json:"content"`
	// StoreBlobMiB is the blob kept and served from the store while pullgate's memory is
	// sampled.
	StoreBlobMiB int `json:"storeBlobMiB"`
	// Crowd is the number of concurrent first pulls of one image.
	Crowd int `json:"crowd"`
	// Ops also compares plain pullgate with pullgate with metrics on, and with TLS and
	// basic auth.
	Ops bool `json:"ops"`
	// Replicas measures the content store instead: warm throughput on the s3 driver
	// against the filesystem driver, and BurstClients concurrent first pulls over three
	// replicas on one bucket (replicas.go).
	Replicas     bool `json:"replicas"`
	BurstClients int  `json:"burstClients"`

	// Registry and Pullgate are binaries; empty means the defaults (GOPATH/bin/registry,
	// and pullgate built from this module).
	Registry string `json:"-"`
	Pullgate string `json:"-"`
	// JSON prints the report as JSON instead of a table.
	JSON bool `json:"-"`
}

// maxLayerMiB bounds every size flag: the benchmark writes the layers to disk and the
// registry stores them again, so a typo must not fill the disk.
const maxLayerMiB = 16 << 10

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("pullgate-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.BigLayerMiB, "big-layer-mib", 256, "size of the single layer of the big image, MiB")
	fs.IntVar(&o.Layers, "layers", 20, "number of layers of the multi-layer image")
	fs.IntVar(&o.LayerMiB, "layer-mib", 4, "size of each layer of the multi-layer image, MiB")
	fs.IntVar(&o.N, "n", 500, "manifest GETs per side and per reference kind (latency samples)")
	fs.IntVar(&o.Runs, "runs", 5, "repetitions of each blob transfer per side (the median is reported)")
	fs.IntVar(&o.Cold, "cold", 7, "fresh signed images whose first (unverified) pull is timed")
	fs.BoolVar(&o.ClientHash, "client-hash", false, "hash blob bodies on the client (both sides) instead of discarding them")
	fs.StringVar(&o.Lookaside, "lookaside", "http", "signature lookaside pullgate reads: http (a local server) or file")
	fs.IntVar(&o.UpstreamMbit, "upstream-mbit", 0, "pace the registry's answers to this many Mbit/s, on both sides (0: plain loopback)")
	fs.BoolVar(&o.Ops, "ops", false, "also compare plain pullgate with pullgate with metrics, and with TLS and basic auth")
	fs.StringVar(&o.ProxyLogLevel, "proxy-log-level", "warn", "pullgate's log level (info logs every request and decision)")
	fs.BoolVar(&o.Content, "content", true, "measure the content store too (warm, upstream down, distribution's proxy mode as the peer)")
	fs.IntVar(&o.StoreBlobMiB, "store-blob-mib", 1024, "size of the blob kept and served from the store while pullgate's memory is sampled, MiB")
	fs.IntVar(&o.Crowd, "crowd", 20, "concurrent first pulls of one image, counting the blob GETs reaching the upstream")
	fs.BoolVar(&o.Replicas, "replicas", false, "measure the content store: s3 (versitygw) against filesystem, and concurrent first pulls over 3 replicas on one bucket")
	fs.IntVar(&o.BurstClients, "burst-clients", 30, "with -replicas: clients pulling one image at once for the first time")
	fs.StringVar(&o.Registry, "registry", "", "a registry binary to start with \"serve CONFIG\" (default: this binary serves distribution's registry in a process of its own)")
	fs.StringVar(&o.Pullgate, "pullgate", "", "pullgate binary to measure (default: go build ./cmd/pullgate)")
	fs.BoolVar(&o.JSON, "json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./cmd/pullgate-bench [flags]\n\n"+
			"Starts distribution's registry and pullgate on 127.0.0.1 and compares pulls\n"+
			"directly from the registry with pulls through pullgate. See docs/benchmarks.md.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return o, o.validate()
}

func (o *options) validate() error {
	var errs []error
	positive := func(name string, v, max int) {
		if v < 1 || v > max {
			errs = append(errs, fmt.Errorf("-%s must be between 1 and %d, not %d", name, max, v))
		}
	}
	positive("big-layer-mib", o.BigLayerMiB, maxLayerMiB)
	positive("layers", o.Layers, 256)
	positive("layer-mib", o.LayerMiB, maxLayerMiB)
	positive("n", o.N, 1_000_000)
	positive("runs", o.Runs, 1000)
	positive("cold", o.Cold, 1000)
	positive("store-blob-mib", o.StoreBlobMiB, maxLayerMiB)
	positive("crowd", o.Crowd, 1000)
	positive("burst-clients", o.BurstClients, 1000)
	if o.Layers*o.LayerMiB > maxLayerMiB {
		errs = append(errs, fmt.Errorf("-layers × -layer-mib must be at most %d MiB", maxLayerMiB))
	}
	if o.UpstreamMbit < 0 || o.UpstreamMbit > 100000 {
		errs = append(errs, fmt.Errorf("-upstream-mbit must be between 0 (no pacing) and 100000, not %d", o.UpstreamMbit))
	}
	if o.Lookaside != "http" && o.Lookaside != "file" {
		errs = append(errs, fmt.Errorf("-lookaside must be http or file, not %q", o.Lookaside))
	}
	switch strings.ToLower(o.ProxyLogLevel) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("-proxy-log-level must be debug, info, warn or error, not %q", o.ProxyLogLevel))
	}
	return errors.Join(errs...)
}
