package main

import (
	"fmt"
	"io"

	"github.com/pullgate/pullgate/internal/version"
)

// runVersion prints the version.
func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "version", stderr)
	if code, done := parseFlagsOnly(fs, args); done {
		return code
	}
	fmt.Fprintf(stdout, "pullgate %s\n", version.String())
	return exitOK
}
