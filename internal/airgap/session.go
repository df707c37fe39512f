// Package airgap implements pullgate's air gap: mirror (fetch, verify and keep images in
// the content store, pinned), export (an OCI image layout with the images' signatures) and
// import (verify a layout under this site's policy and keep what it accepts).
//
// Every image goes through the one assembly (internal/server.Build) exactly as a pull
// does: its /v2/ handler is served on a loopback listener and the image is pulled through
// it (the reference, every child of an index, the cosign .sig attachment and Sigstore
// bundle referrers where registries.d uses them, every blob read whole), so that it is
// fetched, its signatures found and the policy applied by the same code, and what the gate
// admits is kept by the content store as a pull keeps it.
//
// An image is decided before anything of it is kept: a first walk through a server
// built without the content store gates every manifest of the image; only when all of them
// are admitted does a second walk, through the server with the store, keep them and read
// the blobs. So an index with one rejected platform keeps nothing. Import reads no blob
// through the handler: it stages them in the store from the layout's files between the two
// walks and commits them after the second (Import).
package airgap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/cache/store"
	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/internal/server"
	"github.com/pullgate/pullgate/proxy/sigsource"
)

// ErrNoStore: mirror, export and import need content.storage.
var ErrNoStore = errors.New("content.storage is not configured: mirror, export and import keep images in the content store")

// Session is the two servers an air-gap command pulls through.
type Session struct {
	cfg       *config.Config
	keeper    *server.Server
	keepURL   string
	decider   *server.Server
	decideURL string
	regd      *sigsource.RegistriesD
	client    *http.Client
	stops     []func()
	// stage, if set, runs between the decision and the keep (import): it checks the
	// decided image's blobs and stages them in the store; the keep then reads no blob
	// through the handler and commits the staged ones once the manifests are kept.
	stage func(ctx context.Context, im *Image) (*stagedImage, error)
	// fromDIR (import) decides every image through the decider, from DIR's manifests and
	// signatures alone. The keeper would fall back to the signatures the site keeps when
	// DIR's cannot be read, and so accept a re-import whose signatures were altered.
	fromDIR  bool
	progress *Progress
	log      *slog.Logger
}

// Open builds the servers for cfg.
func Open(ctx context.Context, cfg *config.Config, logger *slog.Logger, progress *Progress) (*Session, error) {
	if !cfg.Content.Enabled() {
		return nil, ErrNoStore
	}
	if progress == nil {
		progress = &Progress{}
	}
	s := &Session{cfg: cfg, progress: progress, log: logger,
		client: &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16, DisableCompression: true}}}
	regd, err := sigsource.LoadRegistriesD(cfg.Policy.RegistriesDir)
	if err != nil {
		return nil, fmt.Errorf("policy.registriesDir: %w", err)
	}
	s.regd = regd
	s.keeper, s.keepURL, err = s.serve(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	s.stops = append(s.stops, func() { s.keeper.Close() })
	decideCfg := *cfg
	decideCfg.Content = config.Content{}
	// The decision's lines are the keep's lines again: only warnings and errors.
	s.decider, s.decideURL, err = s.serve(ctx, &decideCfg, slog.New(minLevel{logger.Handler(), slog.LevelWarn}))
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// serve builds the assembly for cfg and serves its handler on 127.0.0.1.
func (s *Session) serve(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*server.Server, string, error) {
	built, err := server.Build(ctx, cfg, logger, server.Options{})
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		built.Close()
		return nil, "", err
	}
	srv := &http.Server{Handler: built.Handler, ReadHeaderTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	go srv.Serve(ln)
	s.stops = append(s.stops, func() { srv.Close() })
	return built, "http://" + ln.Addr().String(), nil
}

// Close stops the servers and closes the store.
func (s *Session) Close() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
	s.stops = nil
}

// Store is the content store.
func (s *Session) Store() *store.Store { return s.keeper.Store() }

// attachments reports whether registries.d's use-sigstore-attachments applies to im.
func (s *Session) attachments(im *Image) bool {
	named, err := reference.ParseNormalizedNamed(im.Name())
	if err != nil {
		return false
	}
	set, err := s.regd.Lookup(named)
	return err == nil && set.UseSigstoreAttachments
}

func (s *Session) offline(registry string) bool {
	for _, u := range s.cfg.Upstreams {
		if u.Registry == registry {
			return u.Offline
		}
	}
	return false
}

func (s *Session) configured(registry string) bool {
	for _, u := range s.cfg.Upstreams {
		if u.Registry == registry {
			return true
		}
	}
	return false
}

// Mirror decides on im and, when every manifest of it is admitted, keeps it whole and
// pins it. It returns the image as kept. A *RejectedError is a policy rejection; any
// other error means it could not be decided or kept.
func (s *Session) Mirror(ctx context.Context, ref Ref) (*Image, error) {
	if !s.configured(ref.Registry) {
		return nil, fmt.Errorf("registry %s is not a configured upstream", ref.Registry)
	}
	decided := ref.image()
	base := s.decideURL
	if s.offline(ref.Registry) || (!s.fromDIR && s.fullyKept(ctx, ref)) {
		// Never contacted, or everything of the image is kept already (a re-run of
		// mirror): the server with the store decides from what it keeps, as it would
		// serve, and keeps nothing new; the upstream is not asked for the manifests
		// again.
		base = s.keepURL
	}
	w := &walker{base: base, client: s.client, attachments: s.attachments}
	if err := w.walk(ctx, decided); err != nil {
		return decided, err
	}
	st := s.Store()
	var staged *stagedImage
	if s.stage != nil {
		var err error
		if staged, err = s.stage(ctx, decided); err != nil {
			return decided, err
		}
		defer staged.discard() // nothing of an image that is not kept stays staged
	}
	kept := ref.image()
	kept.Digest = decided.Digest // a tag that moved since the decision is an error
	kw := &walker{base: s.keepURL, client: s.client, attachments: s.attachments, blobs: staged == nil,
		haveBlob: func(ctx context.Context, b Blob) bool {
			info, err := st.StatBlob(ctx, b.Digest)
			return err == nil && info.Size == b.Size
		},
		onBytes: s.progress.addBytes}
	if err := kw.walk(ctx, kept); err != nil {
		if ref.Tag != "" && !IsRejected(err) {
			err = fmt.Errorf("keeping what was decided: %w", err)
		}
		return kept, err
	}
	if staged != nil {
		if err := staged.commit(ctx, kept.Blobs); err != nil {
			return kept, err
		}
	}
	if err := s.pin(ctx, kept); err != nil {
		return kept, err
	}
	return kept, nil
}

// pin checks that everything of im is kept (blobs are committed after their last byte
// was read), links the blobs to the repository, confirms the tags and pins the manifests.
func (s *Session) pin(ctx context.Context, im *Image) error {
	st := s.Store()
	for _, b := range im.Blobs {
		if b.isEmpty() {
			continue
		}
		if err := waitKept(ctx, st, b); err != nil {
			return fmt.Errorf("%s: blob %s: %w", im.Name(), b.Digest, err)
		}
		if err := st.LinkBlob(ctx, im.Registry, im.Repo, b.Digest); err != nil {
			return err
		}
	}
	for _, m := range im.Manifests {
		if _, err := st.GetManifest(ctx, im.Registry, im.Repo, m.Digest); err != nil {
			return fmt.Errorf("%s: manifest %s was not kept (see the log): %w", im.Name(), m.Digest, err)
		}
		if m.Tag != "" {
			if err := st.PutTag(ctx, im.Registry, im.Repo, m.Tag, m.Digest); err != nil {
				return err
			}
		}
		if err := st.Pin(ctx, im.Registry, im.Repo, m.Digest); err != nil {
			return err
		}
	}
	return nil
}

// waitKept waits until the store holds b: a blob read whole through the handler is
// committed just after its last byte.
func waitKept(ctx context.Context, st *store.Store, b Blob) error {
	deadline := time.Now().Add(keptWait)
	for wait := time.Millisecond; ; wait = min(wait*2, keptPoll) {
		info, err := st.StatBlob(ctx, b.Digest)
		if err == nil {
			if info.Size != b.Size {
				return fmt.Errorf("kept with %d bytes, the manifest says %d", info.Size, b.Size)
			}
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not kept after %s (the store could not be written? see the log)", keptWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// Ref is an image reference of a LIST or the command line.
type Ref struct {
	Registry, Repo string
	Tag            string
	Digest         digest.Digest
}

// ParseRef parses a full reference, normalised as docker does (:latest when it has
// neither tag nor digest).
func ParseRef(s string) (Ref, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return Ref{}, fmt.Errorf("image %q: %w", s, err)
	}
	r := Ref{Registry: reference.Domain(named), Repo: reference.Path(named)}
	tagged, isTagged := named.(reference.Tagged)
	digested, isDigested := named.(reference.Digested)
	switch {
	case isTagged && isDigested:
		return Ref{}, fmt.Errorf("image %q: give a tag or a digest, not both", s)
	case isDigested:
		r.Digest = digested.Digest()
		if r.Digest.Algorithm() != digest.SHA256 {
			return Ref{}, fmt.Errorf("image %q: only sha256 digests are supported", s)
		}
	case isTagged:
		r.Tag = tagged.Tag()
	default:
		r.Tag = "latest"
	}
	return r, nil
}

func (r Ref) image() *Image {
	return &Image{Registry: r.Registry, Repo: r.Repo, Tag: r.Tag, Digest: r.Digest}
}

// String is the full reference.
func (r Ref) String() string { return r.image().Name() }

// minLevel drops records below a level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.level && m.Handler.Enabled(ctx, l)
}
func (m minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(a), m.level}
}
func (m minLevel) WithGroup(n string) slog.Handler { return minLevel{m.Handler.WithGroup(n), m.level} }

// fullyKept reports whether the store holds every manifest and blob of the image ref
// names, and (for a tag) the upstream still names the kept digest (a HEAD, which
// registries do not count as a pull).
func (s *Session) fullyKept(ctx context.Context, ref Ref) bool {
	st := s.Store()
	d := ref.Digest
	if ref.Tag != "" {
		t, err := st.GetTag(ctx, ref.Registry, ref.Repo, ref.Tag)
		if err != nil {
			return false
		}
		src := s.keeper.Source(ref.Registry)
		if src == nil {
			return false
		}
		desc, err := src.HeadManifest(ctx, ref.Repo, ref.Tag, manifestAccept)
		if err != nil || desc.Digest != t.Digest {
			return false
		}
		d = t.Digest
	}
	return treeKept(ctx, st, ref.Registry, ref.Repo, d, 0)
}

func treeKept(ctx context.Context, st *store.Store, registry, repo string, d digest.Digest, depth int) bool {
	if depth > maxDepth {
		return false
	}
	m, err := st.GetManifest(ctx, registry, repo, d)
	if err != nil {
		return false
	}
	doc, err := parseManifest(m.Bytes)
	if err != nil || len(doc.Manifests) > maxChildren {
		return false
	}
	for _, b := range doc.blobs() {
		if b.isEmpty() {
			continue
		}
		if info, err := st.StatBlob(ctx, b.Digest); err != nil || info.Size != b.Size {
			return false
		}
	}
	for _, c := range doc.Manifests {
		if !treeKept(ctx, st, registry, repo, c.Digest, depth+1) {
			return false
		}
	}
	return true
}
