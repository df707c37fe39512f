// Command pullgate is a pull-through OCI registry proxy that serves an image only when its
// signatures satisfy the site's containers-policy.json.
//
//	pullgate serve  --config FILE           run the proxy
//	pullgate verify --config FILE IMAGE     evaluate the policy for one image
//	pullgate version
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

Run "pullgate <command> -h" for a command's flags.
`

func main() {
	// SIGINT and SIGTERM end ctx; serve then shuts down gracefully. A second signal kills
	// the process the default way, since stop restores default handling.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args (without the program name) and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitError
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return runServe(ctx, rest, stderr, newGate)
	case "verify":
		return runVerify(ctx, rest, stdout, stderr, evaluateImage)
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
