package proxy_test

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/gatetest"
)

// recordingObserver keeps every record it is handed.
type recordingObserver struct {
	mu      sync.Mutex
	records []observed
}

type observed struct {
	rt  proxy.Route
	rec proxy.AccessRecord
}

func (o *recordingObserver) Observe(_ context.Context, rt proxy.Route, rec proxy.AccessRecord) {
	o.mu.Lock()
	o.records = append(o.records, observed{rt, rec})
	o.mu.Unlock()
}

// TestObserverSeesEveryRequest: an Observer gets one record per request, with the
// parsed route and what was answered, also for a blob whose answer was aborted; it
// replaces the access line.
func TestObserverSeesEveryRequest(t *testing.T) {
	var corrupt sync.Map // digest of the blob the upstream corrupts
	u := startUpstream(t, tamperBlobs(func(w http.ResponseWriter, h http.Header, b []byte) {
		if _, ok := corrupt.Load(digest.FromBytes(b)); ok {
			b = bytes.Clone(b)
			b[len(b)/2] ^= 0xff
		}
		w.WriteHeader(200)
		w.Write(b)
	}))
	img := randomImage(t)
	md := u.push(t, "team/app", "v1", img)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	bad, _ := layers[0].Digest()
	badSize, _ := layers[0].Size()
	good, _ := layers[1].Digest()
	goodSize, _ := layers[1].Size()
	corrupt.Store(digest.Digest(bad.String()), true)
	manifest, _ := img.RawManifest()

	obs := &recordingObserver{}
	p := startProxyWith(t, gatetest.AllowAll{}, u, func(o *proxy.Options) { o.Observer = obs })
	type want struct {
		route   proxy.Route
		digest  string
		status  int
		bytes   int64 // -1: not checked
		aborted bool
	}
	requests := []struct {
		method, path string
		want         want
	}{
		{"GET", "/v2/", want{route: proxy.Route{Endpoint: "ping"}, status: 200, bytes: 2}},
		{"GET", "/v2/team/app/manifests/v1", want{route: proxy.Route{Endpoint: "manifest", Name: "team/app", Registry: testRegistry, Repository: "team/app", Reference: "v1"},
			digest: md.String(), status: 200, bytes: int64(len(manifest))}},
		{"HEAD", "/v2/team/app/blobs/" + good.String(), want{route: proxy.Route{Endpoint: "blob", Name: "team/app", Registry: testRegistry, Repository: "team/app", Reference: good.String()},
			digest: good.String(), status: 200}},
		{"GET", "/v2/team/app/blobs/" + good.String(), want{route: proxy.Route{Endpoint: "blob", Name: "team/app", Registry: testRegistry, Repository: "team/app", Reference: good.String()},
			digest: good.String(), status: 200, bytes: goodSize}},
		{"GET", "/v2/team/app/blobs/" + bad.String(), want{route: proxy.Route{Endpoint: "blob", Name: "team/app", Registry: testRegistry, Repository: "team/app", Reference: bad.String()},
			digest: bad.String(), status: 200, aborted: true}},
		{"GET", "/v3/nothing", want{status: 404, bytes: -1}},
	}
	for _, rq := range requests {
		req, _ := http.NewRequest(rq.method, p.URL+rq.path, nil)
		if resp, err := p.Client().Do(req); err == nil {
			_, _ = resp.Body.Read(make([]byte, 1))
			resp.Body.Close()
		}
	}
	p.Close() // waits for every handler, so every record is in

	if len(obs.records) != len(requests) {
		t.Fatalf("%d records for %d requests: %+v", len(obs.records), len(requests), obs.records)
	}
	for _, rq := range requests {
		var got *observed
		for i, o := range obs.records {
			if o.rec.Method == rq.method && o.rec.Path == rq.path {
				got = &obs.records[i]
			}
		}
		if got == nil {
			t.Errorf("%s %s: no record", rq.method, rq.path)
			continue
		}
		w := rq.want
		if got.rt != w.route || got.rec.Digest.String() != w.digest || got.rec.Status != w.status || got.rec.Aborted != w.aborted {
			t.Errorf("%s %s: route %+v digest %q status %d aborted %v; want %+v", rq.method, rq.path, got.rt, got.rec.Digest, got.rec.Status, got.rec.Aborted, w)
		}
		switch {
		case w.aborted && got.rec.Bytes >= badSize:
			t.Errorf("%s %s: %d bytes of an aborted %d-byte blob", rq.method, rq.path, got.rec.Bytes, badSize)
		case !w.aborted && w.bytes >= 0 && got.rec.Bytes != w.bytes:
			t.Errorf("%s %s: %d bytes, want %d", rq.method, rq.path, got.rec.Bytes, w.bytes)
		}
		if got.rec.Client == "" || got.rec.Duration <= 0 {
			t.Errorf("%s %s: client %q duration %v", rq.method, rq.path, got.rec.Client, got.rec.Duration)
		}
	}
	if bytes.Contains([]byte(p.logs.String()), []byte("msg=request ")) {
		t.Error("an Observer set, the access line was still written")
	}
}
