package integration

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/testsupport"
)

// TestContentRangeFromStore: a client asking for a range of a kept blob (a resumed layer
// download) gets exactly those bytes of a verified blob. After a restart the kept blob is
// not yet hashed: a range of it is cut from the whole blob hashed on the way, so a blob
// whose bytes rotted on disk never yields a complete 206 of its bytes; once hashed,
// ranges are served by seeking in the file, for as long as the file is the one hashed
// (a rewrite while pullgate runs is hashed again).
func TestContentRangeFromStore(t *testing.T) {
	t.Parallel()
	w := newContentWorld(t)
	layer := harness.RandomLayer(t, 256<<10)
	ld, blob := testsupport.Layer(t, layer)
	d := w.signedOf(t, "range/app", harness.ImageOf(t, layer))

	getRange := func(t *testing.T, base, rangeHeader string) (status int, body []byte, readErr error) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+"blobs/"+ld.String(), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Range", rangeHeader)
		resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		body, readErr = io.ReadAll(resp.Body)
		return resp.StatusCode, body, readErr
	}

	// rotten flips a byte of the kept blob while pullgate is stopped; rewritten flips it
	// (same size, same modification time) while pullgate runs, after the blob was hashed,
	// as another writer of a shared store could.
	for _, name := range []string{"sound", "rotten", "rewritten"} {
		rotten := name != "sound"
		t.Run(name, func(t *testing.T) {
			root := storeDir(t)
			config := w.config(t, pgOptions{content: harness.ContentKeys{Root: root}})
			pg := w.start(t, config)
			skopeoPull(t, ref(pg, "range/app", ":v1"), d)
			if name == "rewritten" {
				harness.FlipByte(t, harness.StoreBlobFile(root, ld))
			} else {
				pg.Stop(t)
				if rotten {
					harness.FlipByte(t, harness.StoreBlobFile(root, ld))
				}
				pg = w.start(t, config)
			}
			base := "http://" + pg.Host + "/v2/" + upstreamName + "/range/app/"
			call(t, http.MethodGet, base+"manifests/v1").served(t, "manifest", d)
			w.reg.ResetRequests()

			// A range around the middle, where FlipByte flips.
			lo, hi := len(blob)/2-50, len(blob)/2+49
			status, body, readErr := getRange(t, base, fmt.Sprintf("bytes=%d-%d", lo, hi))
			if rotten {
				// The rotten bytes are never a complete answer: the response is cut, or
				// (the client retried on a fresh connection) the blob was dropped and
				// fetched again, and the range holds the right bytes.
				if readErr == nil && status == http.StatusPartialContent && !bytes.Equal(body, blob[lo:hi+1]) {
					t.Fatalf("a range of a rotten kept blob was served whole with wrong bytes")
				}
				if lines := linesMentioning(pg, "corrupt"); len(lines) == 0 {
					t.Errorf("no log line says the kept blob was corrupt:\n%s", pg.Logs)
				}
				return
			}
			if readErr != nil || status != http.StatusPartialContent || !bytes.Equal(body, blob[lo:hi+1]) {
				t.Fatalf("first range after the restart: %d, %d bytes, %v", status, len(body), readErr)
			}
			// Hashed now: served from the file by seeking.
			status, body, readErr = getRange(t, base, "bytes=1000-")
			if readErr != nil || status != http.StatusPartialContent || !bytes.Equal(body, blob[1000:]) {
				t.Fatalf("second range: %d, %d bytes, %v", status, len(body), readErr)
			}
			if n := len(w.reg.Requests()); n != 0 {
				t.Fatalf("ranges of a kept blob reached the upstream %d times", n)
			}
		})
	}
}
