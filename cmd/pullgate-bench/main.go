// Command pullgate-bench compares pulling images directly from an upstream registry with
// pulling them through pullgate, in one run on 127.0.0.1: blob throughput, warm manifest
// latency, the cold first pull of a signed image (signature fetch and verification), and
// pullgate's peak memory. It starts distribution's registry (itself, re-executed in a
// registry mode, or a registry binary given with -registry) and a freshly built pullgate
// as separate processes and removes everything it made when it ends, also on
// Ctrl-C. See docs/benchmarks.md.
//
//	go run ./cmd/pullgate-bench [-big-layer-mib 256] [-layers 20 -layer-mib 4] [-n 500] [-runs 5] [-json]
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

// Exit statuses. Missed targets are reported, never an exit status.
const (
	exitOK          = 0
	exitFailed      = 1 // the benchmark could not run to the end
	exitUsage       = 2
	exitInterrupted = 130
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == serveRegistryArg {
		os.Exit(serveRegistry(os.Args[2], os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses args, runs the benchmark (progress on stderr) and prints the report on
// stdout; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "pullgate-bench: %v\n", err)
		return exitUsage
	}
	var r interface {
		writeJSON(io.Writer) error
		writeTable(io.Writer) error
	}
	if o.Replicas {
		r, err = runReplicas(ctx, o, stderr)
	} else {
		r, err = runBench(ctx, o, stderr)
	}
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "pullgate-bench: interrupted; processes stopped and temporary files removed")
			return exitInterrupted
		}
		fmt.Fprintf(stderr, "pullgate-bench: %v\n", err)
		return exitFailed
	}
	if o.JSON {
		err = r.writeJSON(stdout)
	} else {
		err = r.writeTable(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "pullgate-bench: %v\n", err)
		return exitFailed
	}
	return exitOK
}
