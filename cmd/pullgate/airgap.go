package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/pullgate/pullgate/internal/airgap"
	"github.com/pullgate/pullgate/internal/config"
)

// The air-gap commands (DESIGN.md "Air gap"): mirror, export and import. Each prints one
// line per image (reference, digest, verdict, reason) on stdout and progress on stderr;
// exit 0 when every image was handled, 1 when one was rejected, 2 on a usage,
// configuration or I/O error or an image that could not be decided.

// airgapCommand is what the three commands share: flags, configuration, output.
type airgapCommand struct {
	name, synopsis string
	fs             *flag.FlagSet
	configPath     *string
	images         *string
	stdout, stderr io.Writer
}

func newAirgapCommand(name, synopsis string, stdout, stderr io.Writer, withImages bool) *airgapCommand {
	c := &airgapCommand{name: name, synopsis: synopsis, stdout: stdout, stderr: stderr}
	c.fs = newFlagSet(name, synopsis, stderr)
	c.configPath = c.fs.String("config", "", "configuration file (YAML); see config.example.yaml")
	if withImages {
		c.images = c.fs.String("images", "", "file listing one image reference per line (# comments)")
	}
	return c
}

func (c *airgapCommand) fail(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "pullgate %s: %s\n", c.name, fmt.Sprintf(format, args...))
	return exitError
}

// load reads the configuration and opens the session.
func (c *airgapCommand) load(ctx context.Context) (*config.Config, func() *airgap.Progress, int) {
	if *c.configPath == "" {
		return nil, nil, c.fail("--config FILE is required")
	}
	cfg, warnings, err := config.Load(*c.configPath)
	if err != nil {
		return nil, nil, c.fail("%v", err)
	}
	if !cfg.Content.Enabled() {
		return nil, nil, c.fail("%v", airgap.ErrNoStore)
	}
	logger := newLogger(cfg.Log, c.stderr)
	for _, w := range warnings {
		logger.Warn(w)
	}
	progress := func() *airgap.Progress {
		return &airgap.Progress{Out: c.stderr, Terminal: isTerminal(c.stderr)}
	}
	return cfg, progress, exitOK
}

// refs is the images named on the command line and in --images.
func (c *airgapCommand) refs(positional []string) ([]string, int) {
	refs := append([]string(nil), positional...)
	if c.images != nil && *c.images != "" {
		listed, err := airgap.ReadList(*c.images)
		if err != nil {
			return nil, c.fail("--images: %v", err)
		}
		refs = append(refs, listed...)
	}
	if len(refs) == 0 {
		return nil, c.fail("no IMAGE given (arguments or --images LIST)")
	}
	return refs, exitOK
}

// printer prints each result and remembers the worst exit code.
type printer struct {
	w    io.Writer
	code int
}

func (p *printer) each(r airgap.Result) {
	fmt.Fprintln(p.w, r.Line())
	switch r.Verdict {
	case airgap.VerdictError:
		p.code = exitError
	case airgap.VerdictRejected:
		if p.code == exitOK {
			p.code = exitRejected
		}
	}
}

// runMirror implements `pullgate mirror --config FILE [--images LIST] [IMAGE...]`.
func runMirror(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newAirgapCommand("mirror", "mirror --config FILE [--images LIST] [IMAGE...]", stdout, stderr, true)
	rest, err := parseFlags(c.fs, args)
	if err != nil {
		return flagExit(err)
	}
	s, refs, code := c.session(ctx, rest)
	if code != exitOK {
		return code
	}
	defer s.Close()
	p := &printer{w: stdout}
	s.MirrorAll(ctx, refs, p.each)
	return p.code
}

// runExport implements `pullgate export --config FILE --output DIR [--images LIST] [IMAGE...]`.
func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newAirgapCommand("export", "export --config FILE --output DIR [--images LIST] [IMAGE...]", stdout, stderr, true)
	output := c.fs.String("output", "", "folder of the OCI image layout to write (added to when it exists)")
	rest, err := parseFlags(c.fs, args)
	if err != nil {
		return flagExit(err)
	}
	if *output == "" {
		return c.fail("--output DIR is required")
	}
	s, refs, code := c.session(ctx, rest)
	if code != exitOK {
		return code
	}
	defer s.Close()
	p := &printer{w: stdout}
	if err := s.ExportAll(ctx, *output, refs, p.each); err != nil {
		return c.fail("%v", err)
	}
	return p.code
}

// session loads the configuration, reads the references (IMAGE arguments and --images)
// and opens the air-gap session mirror and export work in.
func (c *airgapCommand) session(ctx context.Context, rest []string) (*airgap.Session, []string, int) {
	cfg, progress, code := c.load(ctx)
	if code != exitOK {
		return nil, nil, code
	}
	refs, code := c.refs(rest)
	if code != exitOK {
		return nil, nil, code
	}
	s, err := airgap.Open(ctx, cfg, newLogger(cfg.Log, c.stderr), progress())
	if err != nil {
		return nil, nil, c.fail("%v", err)
	}
	return s, refs, exitOK
}

// runImport implements `pullgate import --config FILE DIR`.
func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newAirgapCommand("import", "import --config FILE DIR", stdout, stderr, false)
	rest, err := parseFlags(c.fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(rest) != 1 {
		return c.fail("expected exactly one DIR (an OCI image layout written by pullgate export)")
	}
	cfg, progress, code := c.load(ctx)
	if code != exitOK {
		return code
	}
	p := &printer{w: stdout}
	if err := airgap.Import(ctx, cfg, newLogger(cfg.Log, stderr), progress(), rest[0], p.each); err != nil {
		return c.fail("%v", err)
	}
	return p.code
}

// isTerminal reports whether w is a terminal (a character device), where the progress
// is a bar redrawn in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
