package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// runBase is what both modes (the benchmark and -replicas) start from: progress lines, the
// machine's description, a temporary folder, pullgate building in the background, the
// upstream registry and the signing key.
type runBase struct {
	start    time.Time
	logf     func(string, ...any)
	machine  machineInfo
	dir      string
	upstream upstreamCommand
	client   *http.Client
	reg      *process
	regAddr  string
	sigDir   string
	signer   *signer

	buildc      chan built
	cancelBuild context.CancelFunc
}

// built is the pullgate binary to measure, or why there is none.
type built struct {
	path string
	err  error
}

// startBase makes the temporary folder (os.MkdirTemp's pattern), starts building pullgate
// in it (unless -pullgate names a binary), starts the upstream registry and makes the
// signing key. close stops and removes all of it; on an error startBase has done so.
func startBase(ctx context.Context, o *options, progress io.Writer, pattern string) (_ *runBase, err error) {
	b := &runBase{start: time.Now(), machine: machineInfo{
		CPUs: runtime.NumCPU(), CPUModel: cpuModel(os.ReadFile), OS: runtime.GOOS, Arch: runtime.GOARCH,
		GoVersion: runtime.Version(), LoadAvgStart: loadAvg(os.ReadFile),
	}}
	b.logf = func(format string, a ...any) { fmt.Fprintf(progress, "pullgate-bench: "+format+"\n", a...) }
	if b.dir, err = os.MkdirTemp("", pattern); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	if b.upstream, err = findRegistry(ctx, o.Registry); err != nil {
		return nil, err
	}
	b.machine.Registry = b.upstream.version

	// pullgate builds while the images are generated and pushed.
	b.buildc = make(chan built, 1)
	var buildCtx context.Context
	buildCtx, b.cancelBuild = context.WithCancel(ctx)
	go func() {
		if o.Pullgate != "" {
			b.buildc <- built{path: o.Pullgate}
			return
		}
		p, err := buildPullgate(buildCtx, b.dir)
		b.buildc <- built{path: p, err: err}
	}()

	b.client = newHTTPClient()
	b.logf("starting %s", b.upstream.version)
	if b.reg, b.regAddr, err = startRegistry(ctx, b.upstream, b.dir, b.client); err != nil {
		return nil, err
	}
	b.logf("generating an RSA-%d OpenPGP signing key", signerRSABits)
	b.sigDir = filepath.Join(b.dir, "lookaside")
	if b.signer, err = newSigner(b.sigDir); err != nil {
		return nil, err
	}
	return b, nil
}

// pullgate waits for the build and returns the binary's path.
func (b *runBase) pullgate() (string, error) {
	r := <-b.buildc
	b.buildc <- r // for later calls and close
	return r.path, r.err
}

// push builds repo:tag (count layers of size bytes each), pushes it to regAddr (the
// registry or a relay in front of it), frees the disk and signs the image.
func (b *runBase) push(ctx context.Context, regAddr, repo, tag string, count int, size int64) (*pushedImage, error) {
	d := filepath.Join(b.dir, "layers", filepath.FromSlash(repo)+"-"+tag)
	img, err := buildAndPush(ctx, b.client, regAddr, d, repo, tag, count, size)
	if err != nil {
		return nil, err
	}
	// The registry holds the layers now; free the disk.
	if err := os.RemoveAll(d); err != nil {
		return nil, err
	}
	return img, b.signer.sign(repo, tag, img.digest)
}

// close stops the registry and the build and removes the temporary folder (the build
// writes into it: it is waited for first).
func (b *runBase) close() {
	if b.reg != nil {
		b.reg.stop()
	}
	if b.client != nil {
		b.client.CloseIdleConnections()
	}
	if b.cancelBuild != nil {
		b.cancelBuild()
		<-b.buildc
	}
	_ = os.RemoveAll(b.dir)
}
