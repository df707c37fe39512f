package main

import (
	"fmt"
	"io"

	"github.com/pullgate/pullgate/internal/version"
)

// runVersion prints the version.
func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "version", stderr)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "pullgate version: unexpected arguments %q\n", rest)
		return exitError
	}
	fmt.Fprintf(stdout, "pullgate %s\n", version.String())
	return exitOK
}
