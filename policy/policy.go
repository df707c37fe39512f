// Package policy loads a containers-policy.json(5) file and decides, as podman, skopeo
// and CRI-O do (containers/image signature/), whether an image may be pulled.
//
// The engine is pure: it is given the image's identity, digest and manifest bytes and a
// SignatureSource, and never fetches anything itself. Parsing is strict (unknown,
// duplicate and case-mismatched keys are errors) and, unlike containers/image, every key
// file is read and parsed when the policy is loaded, so a missing or broken key is a load
// error rather than a silent denial later (DESIGN.md, "Where pullgate differs from
// podman", item 5).
//
// OpenPGP is verified with go-crypto, where podman links gpgme by default; package
// simplesign reaches gpgme's verdicts where go-crypto alone would not (keys without key
// flags, the old non one-pass message form, signatures older than their key or made
// ahead of the verifier's clock). It still refuses, unlike gpgme, SHA-1 and weaker
// digests and signatures dated more than a day ahead; it also refuses version 3
// signature packets, which go-crypto cannot parse.
package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pullgate/pullgate/policy/strictjson"
)

// maxPolicyFileSize bounds the policy file read by LoadFile.
const maxPolicyFileSize = 16 << 20

// ErrInvalidPolicy is wrapped by every error LoadFile and Parse return for a policy that is
// malformed or names keys that cannot be loaded.
var ErrInvalidPolicy = errors.New("invalid policy")

// Policy is a parsed policy with all its key material loaded. It is immutable and safe
// for concurrent use.
type Policy struct {
	name string
	// defaultList is the global "default" list.
	defaultList *requirementList
	// transports holds every transport section; only "docker" is ever evaluated.
	transports map[string]map[string]*requirementList
	// ordered lists every requirement list in file order, for deterministic loading.
	ordered []*requirementList
	// now is the clock used for signature expiry and certificate checks.
	now func() time.Time
	// id is the digest of what LoadFile read (see ID); "" for a parsed policy.
	id string
	// keyFiles are the files LoadFile read beside the policy (KeyFiles).
	keyFiles []string
}

// requirementList is the requirement list of one scope.
type requirementList struct {
	// scope names the list as written in the file: `default`,
	// `transports.docker["docker.io/library"]`.
	scope string
	reqs  []requirement
}

// LoadFile reads, parses and loads the policy at path. Key files named in it are read
// relative to the process's working directory, as containers/image does.
func LoadFile(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPolicy, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPolicyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %w", ErrInvalidPolicy, path, err)
	}
	if len(data) > maxPolicyFileSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalidPolicy, path, maxPolicyFileSize)
	}
	sum := sha256.New()
	sum.Write([]byte(policyIDVersion))
	writeSized(sum, data)
	files := &keyFiles{sum: sum}
	p, err := parse(data, path, files)
	if err != nil {
		return nil, err
	}
	p.id = "sha256:" + hex.EncodeToString(sum.Sum(nil))
	p.keyFiles = files.paths
	return p, nil
}

// policyIDVersion starts the input of every ID, so that a change of what an ID covers
// changes every ID.
const policyIDVersion = "pullgate policy id 1\x00"

// ID is a digest of the bytes LoadFile read: the policy file and, in the order the policy
// names them, every key, certificate and keyring file it names. Two policies with equal
// IDs decide alike (a clock aside). A policy made by Parse has no ID ("").
func (p *Policy) ID() string { return p.id }

// Parse parses and loads a policy; name (usually the file name) is used in messages.
// Errors name the JSON path and the rule broken, such as
// `invalid policy policy.json: transports.docker["quay.io"][0].keyPaths: must contain at least one entry`.
func Parse(data []byte, name string) (*Policy, error) {
	return parse(data, name, nil)
}

func parse(data []byte, name string, files *keyFiles) (*Policy, error) {
	p, err := decode(data, name)
	if err != nil {
		return nil, err
	}
	if err := p.load(files); err != nil {
		return nil, err
	}
	return p, nil
}

// decode parses and validates a policy without loading any key material.
func decode(data []byte, name string) (*Policy, error) {
	p, err := decodePolicy(data)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrInvalidPolicy, name, err)
	}
	p.name = name
	p.now = time.Now
	return p, nil
}

func decodePolicy(data []byte) (*Policy, error) {
	o, err := decodeObjectOnly(data, "default", "transports")
	if err != nil {
		return nil, err
	}
	raw, ok := o.get("default")
	if !ok {
		return nil, errors.New(`missing required key "default"`)
	}
	reqs, err := parseRequirements(raw)
	if err != nil {
		return nil, strictjson.WithPath(".default", err)
	}
	p := &Policy{
		defaultList: &requirementList{scope: "default", reqs: reqs},
		transports:  make(map[string]map[string]*requirementList),
	}
	p.ordered = append(p.ordered, p.defaultList)
	if raw, ok := o.get("transports"); ok {
		if err := p.decodeTransports(raw); err != nil {
			return nil, strictjson.WithPath(".transports", err)
		}
	}
	return p, nil
}

func (p *Policy) decodeTransports(raw []byte) error {
	transports, err := decodeRawObject(raw)
	if err != nil {
		return err
	}
	for _, transport := range transports.keys {
		scopes, err := decodeRawObject(transports.values[transport])
		if err != nil {
			return strictjson.WithPath(strictjson.Key(transport), err)
		}
		lists := make(map[string]*requirementList, len(scopes.keys))
		for _, scope := range scopes.keys {
			path := strictjson.Key(transport) + strictjson.Key(scope)
			if err := validateScope(transport, scope); err != nil {
				return strictjson.WithPath(path, fmt.Errorf("%w: %w", strictjson.ErrUnknownKey, err))
			}
			reqs, err := parseRequirements(scopes.values[scope])
			if err != nil {
				return strictjson.WithPath(path, err)
			}
			l := &requirementList{scope: "transports" + path, reqs: reqs}
			lists[scope] = l
			p.ordered = append(p.ordered, l)
		}
		p.transports[transport] = lists
	}
	return nil
}

// load reads and parses every key the requirements name.
func (p *Policy) load(files *keyFiles) error {
	for _, l := range p.ordered {
		for i, r := range l.reqs {
			if err := r.load(l.scope+strictjson.Index(i), files); err != nil {
				return fmt.Errorf("%w %s: %w", ErrInvalidPolicy, p.name, err)
			}
		}
	}
	return nil
}

// KeyFiles are the key, certificate and keyring files LoadFile read for the policy, in
// order, as the policy names them (relative to the working directory when relative).
// serve watches them for changes.
func (p *Policy) KeyFiles() []string { return append([]string(nil), p.keyFiles...) }

// Name returns the name the policy was loaded under (its file name).
func (p *Policy) Name() string { return p.name }
