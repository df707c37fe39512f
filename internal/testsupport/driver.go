package testsupport

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// CountingDriver counts the calls a content store makes to its storage driver, so that
// tests can assert what a lookup costs. HoldList, when set, is called at the start of
// every List.
type CountingDriver struct {
	storagedriver.StorageDriver
	Lists, Gets, Readers, Stats atomic.Int64
	HoldList                    func()
}

func (d *CountingDriver) List(ctx context.Context, p string) ([]string, error) {
	d.Lists.Add(1)
	if d.HoldList != nil {
		d.HoldList()
	}
	return d.StorageDriver.List(ctx, p)
}

func (d *CountingDriver) GetContent(ctx context.Context, p string) ([]byte, error) {
	d.Gets.Add(1)
	return d.StorageDriver.GetContent(ctx, p)
}

func (d *CountingDriver) Reader(ctx context.Context, p string, off int64) (io.ReadCloser, error) {
	d.Readers.Add(1)
	return d.StorageDriver.Reader(ctx, p, off)
}

func (d *CountingDriver) Stat(ctx context.Context, p string) (storagedriver.FileInfo, error) {
	d.Stats.Add(1)
	return d.StorageDriver.Stat(ctx, p)
}

// Reads are the object reads (GetContent and Reader) since the last Reset.
func (d *CountingDriver) Reads() int64 { return d.Gets.Load() + d.Readers.Load() }

// Reset sets every count to zero.
func (d *CountingDriver) Reset() {
	d.Lists.Store(0)
	d.Gets.Store(0)
	d.Readers.Store(0)
	d.Stats.Store(0)
}

func (d *CountingDriver) String() string {
	return fmt.Sprintf("%d List, %d GetContent, %d Reader, %d Stat", d.Lists.Load(), d.Gets.Load(), d.Readers.Load(), d.Stats.Load())
}
