//go:build !linux

package main

import "syscall"

// childAttrs: only Linux can tie a child's life to its parent; elsewhere the benchmark's
// own clean-up has to do.
func childAttrs() *syscall.SysProcAttr { return nil }
