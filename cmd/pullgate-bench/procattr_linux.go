package main

import "syscall"

// childAttrs puts each child in its own process group, so a Ctrl-C on the terminal reaches
// only the benchmark, which then stops its children in order; and asks the kernel to kill a
// child if the benchmark dies without cleaning up (SIGKILL, a crash).
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
