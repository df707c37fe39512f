// Command pullgate is a pull-through OCI registry proxy that serves an image only when its
// signatures satisfy the site's containers-policy.json.
//
//	pullgate serve  --config FILE           run the proxy
//	pullgate verify --config FILE IMAGE     evaluate the policy for one image
//	pullgate version
//	pullgate mirror --config FILE [--images LIST] [IMAGE...]
//	pullgate export --config FILE --output DIR [--images LIST] [IMAGE...]
//	pullgate import --config FILE DIR
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes. verify uses all three; serve exits exitError when it cannot start.
const (
	exitOK       = 0
	exitRejected = 1 // verify: the policy rejects the image; serve: the server failed while running
	exitError    = 2 // usage, configuration or start-up error; verify could not decide
)

const usageText = `pullgate: a pull-through OCI registry proxy that enforces image signatures

Usage:
  pullgate serve  --config FILE           run the proxy
  pullgate verify --config FILE IMAGE     evaluate the policy for one image; exit 0 accepted, 1 rejected, 2 error
  pullgate version                        print the version

  pullgate mirror --config FILE [--images LIST] [IMAGE...]
                                          fetch, verify and keep images in the content store (pinned)
  pullgate export --config FILE --output DIR [--images LIST] [IMAGE...]
                                          write kept images and their signatures to an OCI layout DIR
  pullgate import --config FILE DIR       verify DIR's images under this site's policy and keep them
                                          mirror, export, import: exit 0 all handled, 1 one rejected, 2 error

Run "pullgate <command> -h" for a command's flags.
`

func main() {
	// Signals are taken over first, before the configuration is read: Go's default action
	// for SIGHUP is to exit, and a supervisor may ask for a reload as soon as it has
	// started pullgate. (Only the Go runtime's own start, before main, remains exposed.)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, os.Interrupt, syscall.SIGTERM)
	ctx, stop := context.WithCancel(context.Background())
	hup := make(chan struct{}, 1)
	go relaySignals(sigs, stop, hup)
	code := run(ctx, hup, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// relaySignals turns SIGINT and SIGTERM into stop (serve then shuts down gracefully) and
// SIGHUP into a reload request on hup, which holds one: requests that arrive before serve
// takes the first add nothing. After the first stop signal the default action is back, so
// that a second one kills a shutdown that takes too long.
func relaySignals(sigs <-chan os.Signal, stop context.CancelFunc, hup chan<- struct{}) {
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			select {
			case hup <- struct{}{}:
			default:
			}
			continue
		}
		stop()
		signal.Reset(os.Interrupt, syscall.SIGTERM)
	}
}

// run executes the command line args (without the program name) and returns the exit code.
// hup carries reload requests for serve (nil: none).
func run(ctx context.Context, hup <-chan struct{}, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitError
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return runServe(ctx, rest, stderr, nil, hup)
	case "verify":
		return runVerify(ctx, rest, stdout, stderr, evaluateImage)
	case "mirror":
		return runMirror(ctx, rest, stdout, stderr)
	case "export":
		return runExport(ctx, rest, stdout, stderr)
	case "import":
		return runImport(ctx, rest, stdout, stderr)
	case "version", "--version", "-version":
		return runVersion(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	default:
		fmt.Fprintf(stderr, "pullgate: unknown command %q\n\n%s", cmd, usageText)
		return exitError
	}
}

// newFlagSet returns a flag set for one command that reports errors instead of exiting.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("pullgate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pullgate %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, allowing flags after positional arguments
// (`pullgate verify IMAGE --config FILE`), and returns the positional arguments.
// errHelp reports that -h was asked for.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// flagExit maps a flag parsing error to an exit code: -h is a success.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitError
}

// parseFlagsOnly parses args for a command that takes no positional arguments. done
// reports that the command ends there, with code: -h, a bad flag or an argument.
func parseFlagsOnly(fs *flag.FlagSet, args []string) (code int, done bool) {
	rest, err := parseFlags(fs, args)
	if err != nil {
		return flagExit(err), true
	}
	if len(rest) > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected arguments %q\n", fs.Name(), rest)
		return exitError, true
	}
	return exitOK, false
}
