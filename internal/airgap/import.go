package airgap

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/internal/readfile"
	"github.com/pullgate/pullgate/proxy/content"
)

// Import verifies every image of the layout in dir under cfg's policy, with only the
// signatures dir carries, and keeps and pins the accepted ones (tags and signatures
// included) in cfg's content store.
//
// dir is served read-only on 127.0.0.1 as one registry per registry name it holds (its
// tags from index.json's ref.name, its manifests and blobs, a referrers API over the
// referrers it lists), and the one assembly is built against it: each such upstream's url
// points at its layout server, and registries.d is replaced by one whose only sections
// point the lookaside at dir/signatures/<registry> and turn sigstore attachments on. The
// gate, the policy, the signature finder and the store are then exactly those of a pull;
// dir is never a signature source beyond itself. After an image's decision every manifest
// of it is re-read in dir and every blob is staged in the store from its dir file (read
// and hashed once, invisible until committed) before anything of it is kept, so an
// altered file rejects its image alone; the keep reads the manifests through the handler
// and commits the staged blobs once they are kept.
func Import(ctx context.Context, cfg *config.Config, logger *slog.Logger, progress *Progress, dir string, each func(Result)) error {
	if !cfg.Content.Enabled() {
		return ErrNoStore
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	l, err := readLayout(abs)
	if err != nil {
		return fmt.Errorf("reading the layout %s: %w", dir, err)
	}
	regd, err := os.MkdirTemp("", "pullgate-import-registries.d-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(regd)

	icfg := *cfg
	icfg.Upstreams = nil
	var yaml strings.Builder
	yaml.WriteString("docker:\n")
	var stops []func()
	defer func() {
		for _, s := range stops {
			s()
		}
	}()
	served := map[string]bool{}
	for _, u := range cfg.Upstreams {
		if _, ok := l.repos[u.Registry]; !ok {
			u.Offline = true // not in DIR: never contacted
			icfg.Upstreams = append(icfg.Upstreams, u)
			continue
		}
		addr, stop, err := serveLayout(l, u.Registry, logger)
		if err != nil {
			return err
		}
		stops = append(stops, stop)
		served[u.Registry] = true
		icfg.Upstreams = append(icfg.Upstreams, config.Upstream{Registry: u.Registry, URL: "http://" + addr})
		sigs := (&url.URL{Scheme: "file", Path: filepath.Join(abs, signaturesDir, u.Registry)}).String()
		fmt.Fprintf(&yaml, "  %s:\n    lookaside: %s\n    use-sigstore-attachments: true\n", strconv.Quote(u.Registry), strconv.Quote(sigs))
	}
	if err := os.WriteFile(filepath.Join(regd, "import.yaml"), []byte(yaml.String()), 0o600); err != nil {
		return err
	}
	icfg.Policy.RegistriesDir = regd

	s, err := Open(ctx, &icfg, logger, progress)
	if err != nil {
		return err
	}
	defer s.Close()
	s.fromDIR = true
	s.stage = func(ctx context.Context, im *Image) (*stagedImage, error) {
		return l.stageImage(ctx, s.Store(), im, progress.addBytes)
	}

	progress.Start(len(l.images))
	defer progress.Finish()
	for _, e := range l.images {
		if !served[e.ref.Registry] {
			each(result(e.name, &Image{Digest: e.desc.Digest}, fmt.Errorf("registry %s is not a configured upstream of this site", e.ref.Registry), ""))
			progress.ImageDone()
			continue
		}
		im, err := s.importOne(ctx, l, e)
		each(result(e.name, im, err, keptReason(im)))
		progress.ImageDone()
	}
	return nil
}

// importOne checks the entry's own manifest in DIR first (the layout server answers
// tags from index.json), then mirrors it from the layout.
func (s *Session) importOne(ctx context.Context, l *layoutDir, e layoutEntry) (*Image, error) {
	if _, err := l.readManifest(e.desc.Digest); err != nil {
		return &Image{Digest: e.desc.Digest}, err
	}
	im, err := s.Mirror(ctx, e.ref)
	if im != nil && im.Digest == "" {
		im.Digest = e.desc.Digest
	}
	if err != nil && !IsRejected(err) {
		if verr := l.verifyTree(e.ref.Registry, e.ref.Repo, e.desc.Digest); IsRejected(verr) {
			return im, verr
		}
	}
	return im, err
}

// layoutServer is a read-only registry over the layout for one registry name.
type layoutServer struct {
	l        *layoutDir
	registry string
	log      *slog.Logger
}

// serveLayout serves the layout's content of registry on 127.0.0.1.
func serveLayout(l *layoutDir, registry string, logger *slog.Logger) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: &layoutServer{l: l, registry: registry, log: logger}, ReadHeaderTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	go srv.Serve(ln)
	return ln.Addr().String(), func() { srv.Close() }, nil
}

var layoutRoute = regexp.MustCompile(`^/v2/(.+)/(manifests|blobs|referrers|tags)/([^/]+)$`)

func (h *layoutServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		ociError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "the layout is read-only")
		return
	}
	if r.URL.Path == "/v2/" || r.URL.Path == "/v2" {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
		return
	}
	m := layoutRoute.FindStringSubmatch(r.URL.Path)
	if m == nil {
		ociError(w, http.StatusNotFound, "NAME_UNKNOWN", "not in the layout")
		return
	}
	repo, kind, ref := m[1], m[2], m[3]
	lr := h.l.repos[h.registry][repo]
	if lr == nil {
		ociError(w, http.StatusNotFound, "NAME_UNKNOWN", "repository not in the layout")
		return
	}
	switch kind {
	case "manifests":
		h.manifest(w, r, lr, ref)
	case "blobs":
		h.blob(w, r, ref)
	case "referrers":
		h.referrers(w, lr, ref)
	case "tags":
		if ref != "list" {
			ociError(w, http.StatusNotFound, "NAME_UNKNOWN", "not in the layout")
			return
		}
		tags := make([]string, 0, len(lr.tags))
		for t := range lr.tags {
			tags = append(tags, t)
		}
		sort.Strings(tags)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"name": repo, "tags": tags})
	}
}

func (h *layoutServer) manifest(w http.ResponseWriter, r *http.Request, lr *layoutRepo, ref string) {
	d, err := digest.Parse(ref)
	if err != nil {
		desc, ok := lr.tags[ref]
		if !ok {
			ociError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "tag not in the layout")
			return
		}
		d = desc.Digest
	}
	b, err := h.l.readManifest(d)
	if err != nil {
		// Altered or missing: the client (pullgate's upstream client) checks digests too.
		ociError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", err.Error())
		return
	}
	w.Header().Set("Content-Type", manifestMediaType(b))
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if r.Method == http.MethodGet {
		w.Write(b)
	}
}

func (h *layoutServer) blob(w http.ResponseWriter, r *http.Request, ref string) {
	d, err := digest.Parse(ref)
	if err != nil || d.Algorithm() != digest.SHA256 {
		ociError(w, http.StatusNotFound, "BLOB_UNKNOWN", "not a sha256 digest")
		return
	}
	f, fi, err := readfile.Open(h.l.blobPath(d)) // a FIFO or a device is not a blob
	if err != nil {
		ociError(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob not in the layout")
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Docker-Content-Digest", d.String())
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

func (h *layoutServer) referrers(w http.ResponseWriter, lr *layoutRepo, ref string) {
	d, err := digest.Parse(ref)
	if err != nil {
		ociError(w, http.StatusBadRequest, "DIGEST_INVALID", "not a digest")
		return
	}
	descs := lr.referrers[d]
	if descs == nil {
		descs = []descriptor{}
	}
	w.Header().Set("Content-Type", content.MediaTypeOCIIndex)
	json.NewEncoder(w).Encode(map[string]any{"schemaVersion": 2, "mediaType": content.MediaTypeOCIIndex, "manifests": descs})
}

func ociError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}
