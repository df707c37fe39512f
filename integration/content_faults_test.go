package integration

// Faults of the content store (contract 1, 6, 7; issue 10 "Bad input and faults"): a
// kill -9 mid-download leaves nothing partial at a final path; a flipped byte in a kept
// blob or manifest is never served and is re-fetched; an unwritable store never fails a
// pull the upstream can serve.

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/testsupport"
)

// TestContentKillMidDownload: the upstream sends half of a layer and hangs; pullgate is
// killed with SIGKILL while its client is reading; restarted on the same folder, it does
// not serve the half it had, fetches the layer again, and serves it right.
func TestContentKillMidDownload(t *testing.T) {
	t.Parallel()
	th := harness.NewThrottle()
	w := newContentWorld(t, harness.WithMiddleware(th.Middleware))
	t.Cleanup(th.Release) // before the registry's own cleanup, which waits for handlers
	layer := harness.RandomLayer(t, 2<<20)
	ld, err := layer.Digest()
	if err != nil {
		t.Fatal(err)
	}
	d := w.signedOf(t, "kill/app", harness.ImageOf(t, layer))
	root := storeDir(t)
	config := w.config(t, pgOptions{content: harness.ContentKeys{Root: root}})
	pg := w.start(t, config)
	base := "http://" + pg.Host + "/v2/" + upstreamName + "/kill/app/"
	call(t, http.MethodGet, base+"manifests/v1").served(t, "manifest", d)

	th.HalfThenHang(ld.String())
	got := make(chan int64, 1)
	go func() {
		// The client: reads what pullgate relays until the connection dies.
		resp, err := http.Get(base + "blobs/" + ld.String())
		if err != nil {
			got <- -1
			return
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		if _, err := br.Peek(1); err != nil {
			got <- 0
			return
		}
		got <- 1
		_, _ = io.Copy(io.Discard, br)
	}()
	select {
	case <-th.HalfSent():
	case <-time.After(boundedCallTimeout):
		t.Fatal("pullgate never asked the upstream for the layer")
	}
	select {
	case n := <-got:
		if n <= 0 {
			t.Logf("the client had no byte of the layer before the kill (%d)", n)
		}
	case <-time.After(10 * time.Second):
		t.Logf("the client had no byte of the layer 10 s after the upstream sent half; killing anyway")
	}
	pg.Kill(t)
	th.Clear(ld.String())

	if p := present(t, root, ld); len(p) != 0 {
		t.Errorf("after kill -9 mid-download the layer is at its final path %s", harness.StoreBlobFile(root, ld))
	}
	harness.CheckStoreFiles(t, root)

	pg = w.start(t, config)
	base = "http://" + pg.Host + "/v2/" + upstreamName + "/kill/app/"
	n := len(w.reg.Requests())
	call(t, http.MethodGet, base+"manifests/v1").served(t, "manifest after the restart", d)
	a, err := callBounded(t, http.MethodGet, base+"blobs/"+ld.String())
	if err != nil {
		t.Fatal(err)
	}
	a.served(t, "the layer after the restart", ld)
	if got := blobGETs(w.reg.RequestsSince(n), ld); got != 1 {
		t.Errorf("the layer was fetched %d times from the upstream after the restart, want 1", got)
	}
	skopeoPull(t, ref(pg, "kill/app", ":v1"), d)
	harness.CheckStoreFiles(t, root)
	if m := missing(t, root, ld); len(m) != 0 {
		t.Errorf("the layer fetched whole after the restart was not kept")
	}
}

// TestContentFlippedByte: after a warm pull, one byte of a kept file is flipped while
// pullgate is stopped (or, for a blob, while it runs); then pullgate never serves a
// complete wrong body, says the entry was corrupt, and serves the right bytes again
// (re-fetched from the upstream).
func TestContentFlippedByte(t *testing.T) {
	t.Parallel()
	w := newContentWorld(t)
	layer := harness.RandomLayer(t, 512<<10)
	ld, err := layer.Digest()
	if err != nil {
		t.Fatal(err)
	}
	img := harness.ImageOf(t, layer)
	d := w.signedOf(t, "rot/app", img)

	for _, c := range []struct {
		name   string
		target v1.Hash
		path   string // what a client GETs under /v2/registry.test/rot/app/
		// running: the byte is flipped while pullgate runs, after it hashed the file (as
		// another writer of a shared store could), not while it is stopped.
		running bool
	}{
		{"blob", ld, "blobs/" + ld.String(), false},
		{"manifest", d, "manifests/" + d.String(), false},
		{"blob rewritten while running", ld, "blobs/" + ld.String(), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := storeDir(t)
			config := w.config(t, pgOptions{content: harness.ContentKeys{Root: root}})
			pg := w.start(t, config)
			skopeoPull(t, ref(pg, "rot/app", ":v1"), d)
			if !c.running {
				pg.Stop(t)
			}
			harness.FlipByte(t, harness.StoreBlobFile(root, c.target))

			if !c.running {
				pg = w.start(t, config)
			}
			base := "http://" + pg.Host + "/v2/" + upstreamName + "/rot/app/"
			if c.target == ld {
				// Admit the blob for the repository, as a pull does.
				call(t, http.MethodGet, base+"manifests/v1").served(t, "manifest", d)
			}
			a, err := callBounded(t, http.MethodGet, base+c.path)
			neverWrong(t, "first GET after the flip", a, err, c.target)
			if c.target == d {
				a, err := callBounded(t, http.MethodGet, base+"manifests/v1")
				neverWrong(t, "GET by tag after the flip", a, err, d)
			}

			// Re-fetched: the next pulls get the right bytes.
			a, err = callBounded(t, http.MethodGet, base+c.path)
			if !neverWrong(t, "GET after the corruption was found", a, err, c.target) {
				t.Errorf("the %s is not served right after the corruption was found (the upstream is up)", c.name)
			}
			skopeoPull(t, ref(pg, "rot/app", ":v1"), d)
			if lines := linesMentioning(pg, "corrupt"); len(lines) == 0 {
				t.Errorf("no log line says the kept %s was corrupt", c.name)
			} else {
				t.Logf("corruption line: %s", lines[0])
			}
			harness.CheckStoreFiles(t, root)
		})
	}
}

// TestContentUnwritableStore: once pullgate runs, its rootdirectory is replaced by a
// regular file, so that every write under it fails (ENOTDIR, even for root); pulls still
// succeed, relayed and not kept, with one error line.
func TestContentUnwritableStore(t *testing.T) {
	t.Parallel()
	w := newContentWorld(t)
	img := harness.ImageOf(t, harness.RandomLayer(t, 128<<10), harness.RandomLayer(t, 8<<10))
	d := w.signedOf(t, "ro/app", img)
	dir := t.TempDir()
	root := filepath.Join(dir, "data")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	pg := w.start(t, w.config(t, pgOptions{content: harness.ContentKeys{Root: root}}))
	if err := os.Rename(root, filepath.Join(dir, "data.moved")); err != nil {
		t.Fatal(err)
	}
	testsupport.WriteFile(t, root, "not a folder\n")

	errorsBefore := len(errorLines(pg))
	n := len(w.reg.Requests())
	skopeoPull(t, ref(pg, "ro/app", ":v1"), d)
	cranePull(t, ref(pg, "ro/app", ":v1"), d)
	if got, want := blobGETs(w.reg.RequestsSince(n), v1.Hash{}), 2*len(harness.ImageBlobs(t, img)); got != want {
		t.Logf("blob GETs upstream for two pulls with an unwritable store: %d (each pull relayed: %d)", got, want)
	}
	lines := errorLines(pg)[errorsBefore:]
	if len(lines) != 1 {
		t.Errorf("%d error lines for pulls with an unwritable store, want one: %v", len(lines), lines)
	}
}
