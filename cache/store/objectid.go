package store

import (
	"os"
	"time"
)

// objectID tells one version of a kept object from another: what a blob was when it was
// hashed. A blob is served without hashing it again only while its object is still the
// one that was hashed, so a blob rewritten in the store by whoever else can write the
// bucket or the folder (same size and all) is hashed on its next serve and dropped.
//
// For the filesystem driver the file's device, inode and change time are part of it:
// writing the file in place changes its ctime, which (unlike mtime) no unprivileged
// writer can set back, and a rename puts another inode there. The other drivers give the
// size and modification time only (S3 keeps seconds), so a rewrite with the same size
// within the second of the check goes unseen until the next start.
type objectID struct {
	size  int64
	mtime int64
	local localID
}

func driverObjectID(size int64, mod time.Time) objectID {
	return objectID{size: size, mtime: mod.UnixNano()}
}

func fileObjectID(fi os.FileInfo) objectID {
	return objectID{size: fi.Size(), mtime: fi.ModTime().UnixNano(), local: localIDOf(fi)}
}
