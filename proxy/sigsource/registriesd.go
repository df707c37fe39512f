package sigsource

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/distribution/reference"
	"go.yaml.in/yaml/v3"
)

// RegistriesD is a parsed containers-registries.d(5) directory.
type RegistriesD struct {
	defaultDocker *namespace
	docker        map[string]namespace
	// id is the digest of the files read (see ID).
	id string
}

// registriesDIDVersion starts the input of every ID.
const registriesDIDVersion = "pullgate registries.d id 1\x00"

// emptyRegistriesD is a configuration read from no file.
func emptyRegistriesD() *RegistriesD {
	return &RegistriesD{docker: map[string]namespace{}, id: newRegistriesDSum().id()}
}

// registriesDSum digests the files of a registries.d as they are read.
type registriesDSum struct{ h hash.Hash }

func newRegistriesDSum() registriesDSum {
	h := sha256.New()
	h.Write([]byte(registriesDIDVersion))
	return registriesDSum{h}
}

// file adds one file, its name and its bytes each after its length.
func (s registriesDSum) file(name string, data []byte) {
	for _, b := range [][]byte{[]byte(name), data} {
		s.h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(b))))
		s.h.Write(b)
	}
}

func (s registriesDSum) id() string { return "sha256:" + hex.EncodeToString(s.h.Sum(nil)) }

// ID is a digest of the files LoadRegistriesD read, by name in name order: equal IDs mean
// equal configurations. A missing directory has the ID of an empty one.
func (r *RegistriesD) ID() string { return r.id }

// namespace is one section. Unknown keys are ignored, as containers/image does.
type namespace struct {
	Lookaside              string `yaml:"lookaside"`
	LookasideStaging       string `yaml:"lookaside-staging"` // write only; parsed for completeness
	SigStore               string `yaml:"sigstore"`          // old name of lookaside
	SigStoreStaging        string `yaml:"sigstore-staging"`  // old name of lookaside-staging
	UseSigstoreAttachments *bool  `yaml:"use-sigstore-attachments"`
}

// readURL is the lookaside base used for reading: lookaside, else its old name.
func (ns namespace) readURL() string {
	if ns.Lookaside != "" {
		return ns.Lookaside
	}
	return ns.SigStore
}

type fileConfig struct {
	DefaultDocker *namespace           `yaml:"default-docker"`
	Docker        map[string]namespace `yaml:"docker"`
}

// LoadRegistriesD reads dir as containers/image does (docker/registries_d.go,
// loadAndMergeConfig): every entry whose name ends in .yaml is read, whatever it is, so a
// directory (or a symlink to one) or an entry that cannot be read makes the whole
// configuration unusable rather than being skipped; other names, .yml included, are
// ignored. One difference, on the strict side: an entry that does not exist when read (a
// dangling symlink) is an error too, where containers/image skips it, so that pullgate never
// runs without a file the operator put there. A missing directory is an empty
// configuration. default-docker may appear in one file only and each docker scope in one
// file only. Every error is a *RegistriesDError naming the file.
func LoadRegistriesD(dir string) (*RegistriesD, error) {
	out := emptyRegistriesD()
	if dir == "" {
		return out, nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, &RegistriesDError{Path: dir, Err: err}
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		// No type filter: containers/image fails on a directory named *.yaml, and a
		// configuration podman refuses must not run here half-read.
		if strings.HasSuffix(e.Name(), ".yaml") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names) // deterministic messages; the order has no other effect
	defaultFrom := ""
	scopeFrom := map[string]string{}
	sum := newRegistriesDSum()
	for _, name := range names {
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path) // the *fs.PathError names path
		if err != nil {
			return nil, &RegistriesDError{Path: path, Err: err}
		}
		sum.file(name, data)
		var fc fileConfig
		if err := yaml.Unmarshal(data, &fc); err != nil {
			return nil, &RegistriesDError{Path: path, Err: fmt.Errorf("parsing %s: %w", path, err)}
		}
		if fc.DefaultDocker != nil {
			if defaultFrom != "" {
				return nil, &RegistriesDError{Path: path, Err: fmt.Errorf("default-docker is defined in both %s and %s", defaultFrom, path)}
			}
			defaultFrom = path
			out.defaultDocker = fc.DefaultDocker
		}
		for scope, ns := range fc.Docker {
			if prev, ok := scopeFrom[scope]; ok {
				return nil, &RegistriesDError{Path: path, Err: fmt.Errorf("docker scope %q is defined in both %s and %s", scope, prev, path)}
			}
			scopeFrom[scope] = path
			out.docker[scope] = ns
		}
	}
	// Reject unusable lookaside URLs now rather than at the first pull.
	for scope, ns := range out.docker {
		if _, err := parseLookasideBase(ns.readURL()); err != nil {
			return nil, &RegistriesDError{Path: scopeFrom[scope], Err: fmt.Errorf("docker scope %q (%s): %w", scope, scopeFrom[scope], err)}
		}
	}
	if out.defaultDocker != nil {
		if _, err := parseLookasideBase(out.defaultDocker.readURL()); err != nil {
			return nil, &RegistriesDError{Path: defaultFrom, Err: fmt.Errorf("default-docker (%s): %w", defaultFrom, err)}
		}
	}
	out.id = sum.id()
	return out, nil
}

// Settings are the signature locations that apply to one image.
type Settings struct {
	// Lookaside is the lookaside base URL with the repository path appended (SPEC.md 3.4),
	// or nil when no section sets one.
	Lookaside *url.URL
	// UseSigstoreAttachments enables sha256-<hex>.sig attachments (and, in pullgate,
	// Sigstore bundles found through referrers).
	UseSigstoreAttachments bool
}

// Lookup returns the settings for ref, an image's upstream (logical) name with its tag or
// digest (DESIGN.md, difference 4). Each setting comes from the most specific section that
// sets it (SPEC.md 3.3): the candidate scopes are those of policy.json's docker transport,
// then default-docker.
func (r *RegistriesD) Lookup(ref reference.Named) (Settings, error) {
	var s Settings
	var base string
	var attachments *bool
	for _, scope := range scopeCandidates(ref) {
		ns, ok := r.docker[scope]
		if !ok {
			continue
		}
		if base == "" {
			base = ns.readURL()
		}
		if attachments == nil {
			attachments = ns.UseSigstoreAttachments
		}
	}
	if r.defaultDocker != nil {
		if base == "" {
			base = r.defaultDocker.readURL()
		}
		if attachments == nil {
			attachments = r.defaultDocker.UseSigstoreAttachments
		}
	}
	if attachments != nil {
		s.UseSigstoreAttachments = *attachments
	}
	u, err := parseLookasideBase(base)
	if err != nil {
		return Settings{}, err
	}
	if u != nil {
		// No slash trimming: a base ending in / yields // (containers/image does the same).
		u.Path += "/" + reference.Path(ref)
		s.Lookaside = u
	}
	return s, nil
}

// parseLookasideBase parses a lookaside URL; "" is no lookaside.
func parseLookasideBase(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid lookaside URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "http", "https", "file":
		return u, nil
	}
	return nil, fmt.Errorf("lookaside URL %q: unsupported scheme %q (http, https and file are supported)", raw, u.Scheme)
}

// RegistriesDError says that a registries.d directory cannot be used. Path is the file (or
// the directory) at fault; Err's message names it.
type RegistriesDError struct {
	Path string
	Err  error
}

func (e *RegistriesDError) Error() string { return "registries.d: " + e.Err.Error() }

func (e *RegistriesDError) Unwrap() error { return e.Err }
