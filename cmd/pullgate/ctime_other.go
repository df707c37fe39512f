//go:build !linux

package main

import (
	"os"
	"time"
)

// changeTime is fi's modification time where the inode change time is not read.
func changeTime(fi os.FileInfo) time.Time { return fi.ModTime() }
