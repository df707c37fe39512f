//go:build linux || darwin || freebsd || netbsd || openbsd

package store

import (
	"os"
	"syscall"
)

// localID is a file's device, inode and change time.
type localID struct {
	dev, ino uint64
	ctime    int64
}

func localIDOf(fi os.FileInfo) localID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return localID{}
	}
	return localID{dev: uint64(st.Dev), ino: uint64(st.Ino), ctime: statCtime(st)}
}
