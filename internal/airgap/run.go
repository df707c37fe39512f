package airgap

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
)

// Verdicts printed per image.
const (
	VerdictAccepted = "accepted"
	VerdictRejected = "rejected"
	VerdictError    = "error"
)

// Result is what became of one image.
type Result struct {
	Ref     string
	Digest  string // "-" when unknown
	Verdict string
	Reason  string
}

// Line is the image's output line: reference, digest, verdict, reason.
func (r Result) Line() string {
	return fmt.Sprintf("%s %s %s %s", r.Ref, r.Digest, r.Verdict, r.Reason)
}

// result makes the Result of an image handled with err.
func result(ref string, im *Image, err error, okReason string) Result {
	r := Result{Ref: ref, Digest: "-", Verdict: VerdictAccepted, Reason: okReason}
	if im != nil && im.Digest != "" {
		r.Digest = im.Digest.String()
	}
	switch {
	case err == nil:
	case IsRejected(err):
		r.Verdict, r.Reason = VerdictRejected, err.Error()
	default:
		r.Verdict, r.Reason = VerdictError, err.Error()
	}
	r.Reason = strings.Join(strings.Fields(r.Reason), " ") // one line
	return r
}

// ReadList reads a LIST file: one reference per line, blank lines and # comments ignored.
func ReadList(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readList(f, path)
}

func readList(r io.Reader, path string) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	n := 0
	for sc.Scan() {
		if n++; n > maxListLines {
			return nil, fmt.Errorf("%s: more than %d lines", path, maxListLines)
		}
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// MirrorAll mirrors every reference, calling each with its result as it is done.
func (s *Session) MirrorAll(ctx context.Context, refs []string, each func(Result)) {
	s.mirrorEach(ctx, refs, each, func(ref string, im *Image, err error) Result {
		return result(ref, im, err, keptReason(im))
	})
}

// mirrorEach mirrors every reference, showing progress; done makes the result of each one
// mirrored (with its error), and each is called with it, or with the error of a reference
// that does not parse.
func (s *Session) mirrorEach(ctx context.Context, refs []string, each func(Result), done func(ref string, im *Image, err error) Result) {
	s.progress.Start(len(refs))
	defer s.progress.Finish()
	for _, raw := range refs {
		ref, err := ParseRef(raw)
		if err != nil {
			each(result(raw, nil, err, ""))
			s.progress.ImageDone()
			continue
		}
		im, err := s.Mirror(ctx, ref)
		each(done(ref.String(), im, err))
		s.progress.ImageDone()
	}
}

func keptReason(im *Image) string {
	if im == nil {
		return ""
	}
	return fmt.Sprintf("kept and pinned: %d manifests, %d blobs, %s", len(im.Manifests), len(im.Blobs), mib(im.Bytes()))
}

// ExportAll mirrors every reference (what is kept is not fetched again) and writes the
// accepted ones to the layout in dir.
func (s *Session) ExportAll(ctx context.Context, dir string, refs []string, each func(Result)) error {
	l, err := OpenLayout(dir)
	if err != nil {
		return err
	}
	s.mirrorEach(ctx, refs, each, func(ref string, im *Image, err error) Result {
		if err == nil {
			err = l.Write(ctx, s.Store(), im)
		}
		reason := ""
		if im != nil {
			reason = fmt.Sprintf("written to %s: %d manifests, %d blobs, %s", dir, len(im.Manifests), len(im.Blobs), mib(im.Bytes()))
		}
		return result(ref, im, err, reason)
	})
	return nil
}
