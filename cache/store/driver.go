package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"

	// The drivers content.storage may name.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"
)

// refusedKeys are distribution's `storage:` keys that are not drivers and have no place in
// content.storage: pullgate never redirects to the object store, deletes through the API,
// or runs distribution's cache or upload maintenance.
var refusedKeys = map[string]bool{"redirect": true, "delete": true, "cache": true, "maintenance": true}

// driverNames maps the names content.storage accepts to the factory names.
var driverNames = map[string]string{"filesystem": "filesystem", "inmemory": "inmemory", "s3": "s3aws", "s3aws": "s3aws"}

// localDriver is the filesystem driver with the folder it keeps its files in, so the store
// can open kept blobs as files (sendfile) and spool downloads beside them (commit is a
// rename).
type localDriver struct {
	storagedriver.StorageDriver
	root string
}

// LocalRoot is the absolute folder holding the driver's files.
func (d localDriver) LocalRoot() string { return d.root }

// localRooter is implemented by drivers whose objects are plain files under a local folder.
type localRooter interface{ LocalRoot() string }

// NewDriver builds a storage driver from a distribution-style `storage:` map naming exactly
// one driver, e.g. {"filesystem": {"rootdirectory": "./data"}}. A relative filesystem
// rootdirectory is resolved against baseDir. Errors name the key and wrap ErrConfig.
func NewDriver(ctx context.Context, storage map[string]any, baseDir string) (storagedriver.StorageDriver, error) {
	keys := make([]string, 0, len(storage))
	for k := range storage {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if refusedKeys[k] {
			return nil, fmt.Errorf("storage key %q is not supported in the content store (pullgate serves the bytes itself): %w", k, ErrConfig)
		}
	}
	switch len(keys) {
	case 0:
		return nil, fmt.Errorf("storage names no driver (filesystem, s3 or inmemory): %w", ErrConfig)
	case 1:
	default:
		return nil, fmt.Errorf("storage names more than one driver (%q and %q): %w", keys[0], keys[1], ErrConfig)
	}
	name := keys[0]
	factoryName, ok := driverNames[name]
	if !ok {
		return nil, fmt.Errorf("storage driver %q is not supported (filesystem, s3 or inmemory): %w", name, ErrConfig)
	}
	params, err := paramMap(storage[name])
	if err != nil {
		return nil, fmt.Errorf("storage.%s: %v: %w", name, err, ErrConfig)
	}
	var root string
	if name == "filesystem" {
		r, _ := params["rootdirectory"].(string)
		if r == "" {
			return nil, fmt.Errorf("storage.filesystem.rootdirectory must name a folder: %w", ErrConfig)
		}
		if !filepath.IsAbs(r) {
			r = filepath.Join(baseDir, r)
		}
		if root, err = filepath.Abs(r); err != nil {
			return nil, fmt.Errorf("storage.filesystem.rootdirectory %q: %v: %w", r, err, ErrConfig)
		}
		params["rootdirectory"] = root
	}
	d, err := factory.Create(ctx, factoryName, params)
	if err != nil {
		return nil, fmt.Errorf("storage.%s: %v: %w", name, err, ErrConfig)
	}
	if root != "" {
		return localDriver{StorageDriver: d, root: root}, nil
	}
	return d, nil
}

// paramMap copies a driver's parameters, accepting the map shapes YAML decoders produce.
func paramMap(v any) (map[string]any, error) {
	out := map[string]any{}
	switch m := v.(type) {
	case nil:
	case map[string]any:
		for k, v := range m {
			out[k] = v
		}
	case map[any]any:
		for k, v := range m {
			s, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("parameter name %v is not a string", k)
			}
			out[s] = v
		}
	default:
		return nil, fmt.Errorf("parameters must be a map, not %T", v)
	}
	return out, nil
}
