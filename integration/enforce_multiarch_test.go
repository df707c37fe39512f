package integration

// Multi-arch images through the pullgate binary (SPEC.md 10.6 with DESIGN.md's
// differences 1-3), each compared with what skopeo decides pulling directly.

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pullgate/pullgate/integration/harness"
)

// multiArch is an index of two platforms in the upstream, as repo:v1.
type multiArch struct {
	repo                string
	index, amd64, arm64 v1.Hash
}

// pushIndex pushes a random two-platform OCI index as repo:v1.
func (w *enforceWorld) pushIndex(t *testing.T, repo string) multiArch {
	t.Helper()
	w.reg.PushIndex(t, repo+":v1", harness.OCIIndex(t, 2048, harness.LinuxAMD64, harness.LinuxARM64))
	return w.readIndex(t, repo)
}

// signIndexAlone signs the bytes of the index repo:v1, not its children, for the tag
// identity, as cosign without --recursive does (here with skopeo standalone-sign).
func (w *enforceWorld) signIndexAlone(t *testing.T, repo string) {
	t.Helper()
	raw, err := remote.Get(w.reg.Ref(t, repo+":v1"))
	if err != nil {
		t.Fatal(err)
	}
	w.sig.SignManifest(t, w.trusted, raw.Manifest, fullName(repo)+":v1", repo)
}

// readIndex reads what repo:v1 is in the upstream.
func (w *enforceWorld) readIndex(t *testing.T, repo string) multiArch {
	t.Helper()
	idx := w.reg.Index(t, repo+":v1")
	m := multiArch{repo: repo}
	var err error
	if m.index, err = idx.Digest(); err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		switch d.Platform.Architecture {
		case "amd64":
			m.amd64 = d.Digest
		case "arm64":
			m.arm64 = d.Digest
		}
	}
	return m
}

// signedIndex pushes an index to src/<repo> and copies it to repo:v1 with
// `skopeo copy --all --sign-by`, which signs every instance and then the index, all for
// identity registry.test/<repo>:v1 (SPEC.md 6.2).
func (w *enforceWorld) signedIndex(t *testing.T, repo string) multiArch {
	t.Helper()
	src := w.pushIndex(t, "src/"+repo)
	w.copySigned(t, w.trusted, fullName(repo)+":v1", "src/"+repo+":v1", repo+":v1", "--all")
	m := w.readIndex(t, repo)
	if m.index != src.index || m.amd64 != src.amd64 || m.arm64 != src.arm64 {
		t.Fatalf("skopeo changed the index while copying: %+v, source %+v", m, src)
	}
	for _, d := range []v1.Hash{m.index, m.amd64, m.arm64} {
		if len(w.sig.Signatures(t, repo, d)) != 1 {
			t.Fatalf("skopeo --all --sign-by did not sign %s of %s", d, repo)
		}
	}
	return m
}

// multiPuller fetches one repository's manifests and blobs through pullgate and checks
// the decision logged for each manifest.
type multiPuller struct {
	t    *testing.T
	w    *enforceWorld
	pg   *harness.Pullgate
	m    multiArch
	seen int // decisions about the repository so far
}

// manifest GETs ref (tag or digest) and returns the answer and its decision log line.
func (p *multiPuller) manifest(ref string) (answer, map[string]any) {
	p.t.Helper()
	a := call(p.t, http.MethodGet, "http://"+p.pg.Host+"/v2/"+fullName(p.m.repo)+"/manifests/"+ref)
	p.seen++
	return a, waitDecisions(p.t, p.pg, p.m.repo, "manifest", p.seen)[p.seen-1]
}

// served checks that ref is served as digest want, evaluated for identity, with a
// decision reason containing why.
func (p *multiPuller) served(ref string, want v1.Hash, identity, why string) {
	p.t.Helper()
	a, d := p.manifest(ref)
	a.served(p.t, fullName(p.m.repo)+" "+ref, want)
	if d["identity"] != identity || d["verdict"] != "accept" || !strings.Contains(d["reason"].(string), why) {
		p.t.Errorf("%s: decision %v, want identity %s and reason with %q", ref, d, identity, why)
	}
}

// denied checks that ref is refused with a message containing why.
func (p *multiPuller) denied(ref string, why string) {
	p.t.Helper()
	a, _ := p.manifest(ref)
	if e := a.denied(p.t, fullName(p.m.repo)+" "+ref); !strings.Contains(e.Message, why) {
		p.t.Errorf("%s: denial %q, want %q in it", ref, e.Message, why)
	}
}

// blobs checks whether the config and layers of the platform manifest d are served.
func (p *multiPuller) blobs(d v1.Hash, allowed bool) {
	p.t.Helper()
	for _, b := range harness.ImageBlobs(p.t, p.w.reg.Image(p.t, p.m.repo+"@"+d.String())) {
		a := call(p.t, http.MethodGet, "http://"+p.pg.Host+"/v2/"+fullName(p.m.repo)+"/blobs/"+b.String())
		if allowed {
			a.served(p.t, "blob "+b.String(), b)
		} else {
			a.denied(p.t, "blob "+b.String())
		}
	}
}

// skopeo copies ref of the repository (":v1" or "@sha256:...") through pullgate
// (insecure policy: pullgate is the judge) or directly (with pullgate's policy), one
// platform (linux/amd64) or all, and returns skopeo's error output when it failed.
func (p *multiPuller) skopeo(ref string, direct, all bool) (failed bool, stderr string) {
	p.t.Helper()
	opts, src := harness.SkopeoOptions{}, "docker://"+p.pg.Host+"/"+fullName(p.m.repo)+ref
	if direct {
		opts, src = p.w.direct(), "docker://"+fullName(p.m.repo)+ref
	}
	args := []string{"--override-os", "linux", "--override-arch", "amd64", "copy", "--remove-signatures", "--src-tls-verify=false"}
	if all {
		args = append(args, "--all")
	}
	_, stderr, err := harness.SkopeoRun(p.t, opts, append(args, src, "oci:"+filepath.Join(p.t.TempDir(), "oci")+":x")...)
	return err != nil, stderr
}

// sameVerdict pulls ref with skopeo through pullgate and directly and checks both
// allowed (or both refused, with directWhy in skopeo's direct error).
func (p *multiPuller) sameVerdict(ref string, all, allowed bool, directWhy string) {
	p.t.Helper()
	viaFailed, viaErr := p.skopeo(ref, false, all)
	directFailed, directErr := p.skopeo(ref, true, all)
	if viaFailed == allowed || directFailed == allowed {
		p.t.Errorf("%s (all=%v): want allowed=%v; through pullgate failed=%v, directly failed=%v\nvia: %s\ndirect: %s",
			ref, all, allowed, viaFailed, directFailed, viaErr, directErr)
	}
	if !allowed && !strings.Contains(directErr, directWhy) {
		p.t.Errorf("%s (all=%v): skopeo directly: want %q in\n%s", ref, all, directWhy, directErr)
	}
	if !allowed && !strings.Contains(viaErr, "denied: ") {
		p.t.Errorf("%s (all=%v): skopeo through pullgate does not show a denial:\n%s", ref, all, viaErr)
	}
}

const (
	noSignature  = "a signature was required, but no signature exists"
	noSigDirect  = "A signature was required, but no signature exists"
	signedByKey  = "is signed by key"
	listedBy     = "listed by index"
	childAccepts = "is accepted; every child is checked when fetched"
)

func TestEnforceMultiArch(t *testing.T) {
	t.Parallel()
	w := newEnforceWorld(t)
	var indexOnly, allSigned, childrenOnly, exact, swapped, oneChild multiArch
	parallel(t, "set-up", map[string]func(*testing.T){
		"build": w.build(t.TempDir()),
		"index only": func(t *testing.T) {
			indexOnly = w.pushIndex(t, "indexonly/app")
			w.signIndexAlone(t, "indexonly/app")
		},
		"all signed": func(t *testing.T) { allSigned = w.signedIndex(t, "allsigned/app") },
		"children only": func(t *testing.T) {
			childrenOnly = w.signedIndex(t, "childrenonly/app")
			w.sig.PutSignatures(t, "childrenonly/app", childrenOnly.index, nil)
		},
		// Under the matchExact scope, with the index's own signature removed so that
		// only the children's signatures (for exact/app:v1) can accept anything.
		"exact": func(t *testing.T) {
			exact = w.signedIndex(t, "exact/app")
			w.sig.PutSignatures(t, "exact/app", exact.index, nil)
		},
		// The tag re-pointed at another index whose manifests carry the first one's
		// signatures: each signature is valid, for the right identity, for another digest.
		"swapped": func(t *testing.T) {
			old := w.signedIndex(t, "swapped/app")
			swapped = w.pushIndex(t, "swapped/app")
			for from, to := range map[v1.Hash]v1.Hash{old.index: swapped.index, old.amd64: swapped.amd64, old.arm64: swapped.arm64} {
				w.sig.PutSignatures(t, "swapped/app", to, w.sig.Signatures(t, "swapped/app", from))
			}
		},
		"one child": func(t *testing.T) {
			oneChild = w.signedIndex(t, "onechild/app")
			w.sig.PutSignatures(t, "onechild/app", oneChild.index, nil)
			w.sig.PutSignatures(t, "onechild/app", oneChild.arm64, nil)
		},
	})
	pg := w.startPullgate(t)
	puller := func(t *testing.T, m multiArch) *multiPuller { return &multiPuller{t: t, w: w, pg: pg, m: m} }

	// DESIGN.md difference 1 (SPEC.md 10.6 #46): only the index is signed. pullgate
	// serves the index and, once it was fetched, its children; podman and skopeo evaluate
	// only the platform instance, find no signature for it and refuse.
	t.Run("signed index, unsigned children", func(t *testing.T) {
		t.Parallel()
		p, m := puller(t, indexOnly), indexOnly
		tag := fullName(m.repo) + ":v1"
		// Fetched by digest before any index names it, a child is judged on its own.
		p.denied(m.amd64.String(), noSignature)
		p.blobs(m.amd64, false)
		p.served("v1", m.index, tag, signedByKey)
		p.served(m.amd64.String(), m.amd64, tag, listedBy+" "+m.index.String())
		p.served(m.arm64.String(), m.arm64, tag, listedBy+" "+m.index.String())
		p.blobs(m.amd64, true)
		p.blobs(m.arm64, true)

		if failed, errOut := p.skopeo(":v1", false, true); failed {
			t.Errorf("skopeo --all through pullgate: %s", errOut)
		}
		// The documented difference: skopeo directly refuses what pullgate serves.
		if failed, errOut := p.skopeo(":v1", true, false); !failed || !strings.Contains(errOut, noSigDirect) {
			t.Errorf("skopeo directly: failed=%v, want %q (containers/image ignores index signatures)\n%s", failed, noSigDirect, errOut)
		}
	})

	// SPEC.md 10.6 #48: skopeo copy --all --sign-by signs the instances and the index for
	// repo:v1. A child fetched directly by its own digest is accepted (the default
	// matcher accepts a signed repo:tag for repo@digest), as are the index by digest and
	// by tag.
	t.Run("index and children signed", func(t *testing.T) {
		t.Parallel()
		p, m := puller(t, allSigned), allSigned
		p.served(m.amd64.String(), m.amd64, fullName(m.repo)+"@"+m.amd64.String(), signedByKey)
		p.served(m.index.String(), m.index, fullName(m.repo)+"@"+m.index.String(), signedByKey)
		p.served("v1", m.index, fullName(m.repo)+":v1", signedByKey)
		// A child's blobs are admitted by the child's manifest, not by the index.
		p.blobs(m.arm64, false)
		p.served(m.arm64.String(), m.arm64, fullName(m.repo)+":v1", signedByKey)
		p.blobs(m.arm64, true)
		p.sameVerdict(":v1", false, true, "")
		p.sameVerdict(":v1", true, true, "")
		p.sameVerdict("@"+m.index.String(), true, true, "")
		p.sameVerdict("@"+m.amd64.String(), false, true, "")
	})

	// DESIGN.md difference 2: the index is unsigned, its children are signed. The index is
	// served because a child is accepted; each child is accepted on its own signature.
	// podman accepts this image too.
	t.Run("unsigned index, signed children", func(t *testing.T) {
		t.Parallel()
		p, m := puller(t, childrenOnly), childrenOnly
		tag := fullName(m.repo) + ":v1"
		p.served("v1", m.index, tag, childAccepts)
		p.served(m.amd64.String(), m.amd64, tag, signedByKey)
		p.served(m.arm64.String(), m.arm64, tag, signedByKey)
		p.served(m.index.String(), m.index, fullName(m.repo)+"@"+m.index.String(), childAccepts)
		p.blobs(m.amd64, true)
		p.sameVerdict(":v1", false, true, "")
		p.sameVerdict(":v1", true, true, "")
	})

	// DESIGN.md difference 3 (SPEC.md 10.6 #49): a child fetched by digest after its index
	// was fetched by tag is evaluated with the tag identity. Under matchExact only that
	// identity matches the children's signatures for exact/app:v1.
	t.Run("child keeps the identity it was reached by", func(t *testing.T) {
		t.Parallel()
		p, m := puller(t, exact), exact
		tag := fullName(m.repo) + ":v1"
		notExact := `signature for identity "` + tag + `" is not accepted (matchExact)`
		p.denied(m.amd64.String(), notExact) // no index seen: the digest identity
		p.served("v1", m.index, tag, childAccepts)
		p.served(m.amd64.String(), m.amd64, tag, signedByKey) // its own signature, for the tag
		p.blobs(m.amd64, true)
		// By index digest, neither the index (unsigned) nor a child (signed for the tag)
		// matches exactly: refused, as skopeo refuses it.
		p.denied(m.index.String(), "no child is accepted either")
		p.sameVerdict(":v1", false, true, "")
		p.sameVerdict("@"+m.index.String(), false, false, "Signature for identity "+tag+" is not accepted")
		// The child by its own digest, as pullgate judged it before any index named it.
		// (Once an index was fetched by tag, pullgate cannot tell a later direct pull of
		// the child from the rest of that pull, and judges it with the tag identity.)
		if failed, errOut := p.skopeo("@"+m.amd64.String(), true, false); !failed || !strings.Contains(errOut, "Signature for identity "+tag+" is not accepted") {
			t.Errorf("skopeo directly, child by digest: failed=%v\n%s", failed, errOut)
		}
	})

	// SPEC.md 10.6 #50: the index names children whose signatures are for other digests.
	t.Run("children not the ones signed", func(t *testing.T) {
		t.Parallel()
		p, m := puller(t, swapped), swapped
		p.denied("v1", "does not match the manifest")
		p.denied("v1", "no child is accepted either")
		p.denied(m.amd64.String(), "does not match the manifest")
		p.denied(m.arm64.String(), "does not match the manifest")
		p.blobs(m.amd64, false)
		p.sameVerdict(":v1", false, false, "does not match")
	})

	// DESIGN.md difference 2, the other side: the index is served for its one accepted
	// child, and the unsigned child is still refused when fetched.
	t.Run("one accepted child", func(t *testing.T) {
		t.Parallel()
		p, m := puller(t, oneChild), oneChild
		tag := fullName(m.repo) + ":v1"
		p.served("v1", m.index, tag, childAccepts)
		p.served(m.amd64.String(), m.amd64, tag, signedByKey)
		p.denied(m.arm64.String(), noSignature)
		p.blobs(m.amd64, true)
		p.blobs(m.arm64, false)
		p.sameVerdict(":v1", false, true, "")          // linux/amd64 only
		p.sameVerdict(":v1", true, false, noSigDirect) // --all needs arm64 too
	})
}
