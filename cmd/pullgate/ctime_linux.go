package main

import (
	"os"
	"syscall"
	"time"
)

// changeTime is when fi's file was last changed (its inode change time): unlike the
// modification time it cannot be set back (cp -p, touch -d), and a rename sets it too.
func changeTime(fi os.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
	}
	return fi.ModTime()
}
