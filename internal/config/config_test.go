package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/policy"
	"github.com/pullgate/pullgate/proxy/sigsource"
)

// problemsOf returns the problem lines of a Load error, failing unless it is a *Error.
func problemsOf(t *testing.T, err error) []string {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error is %T (%v), want *Error", err, err)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error does not wrap ErrInvalid")
	}
	var out []string
	for _, p := range ce.Problems {
		out = append(out, p.String())
	}
	return out
}

func TestLoadConfigGood(t *testing.T) {
	path := testsupport.WriteConfig(t, testsupport.GoodConfig)
	dir := filepath.Dir(path)
	cfg, warnings, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings = %q", warnings)
	}
	want := &Config{
		Listen: "127.0.0.1:5000",
		Upstreams: []Upstream{
			{Registry: "docker.io", URL: "https://registry-1.docker.io"},
			{Registry: "127.0.0.1:5001", URL: "http://127.0.0.1:5001"},
		},
		DefaultUpstream:  "docker.io",
		Policy:           Policy{Path: filepath.Join(dir, "policy.json"), RegistriesDir: filepath.Join(dir, "registries.d"), ReloadTimeout: 30 * time.Second},
		Log:              Log{Level: "info", Format: "text"},
		UpstreamTimeouts: UpstreamTimeouts{Dial: 10 * time.Second, ResponseHeader: 30 * time.Second, Setup: 30 * time.Second, Request: time.Minute, BlobStall: time.Minute, Lookaside: 15 * time.Second},
		Cache:            Cache{Verdicts: VerdictCache{Size: 10000, AcceptTTL: 10 * time.Minute, DenyTTL: time.Minute}},
		ClientTimeouts:   ClientTimeouts{WriteStall: time.Minute},
		Limits:           Limits{BlobStreams: 256},
		Content:          Content{TagTTL: time.Minute, MaxStale: 168 * time.Hour},
		Auth:             Auth{FailedLoginsPerMinute: 30},
		File:             path,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load =\n%+v\nwant\n%+v", cfg, want)
	}
}

func TestLoadConfigEveryKey(t *testing.T) {
	path := testsupport.WriteConfig(t, `listen: ":5443"
upstreams:
  - registry: quay.io
    url: https://quay.io/
    username: robot
    password: s3cret
    caFile: ca.pem
  - Registry: ghcr.io
    URL: https://ghcr.io
    dockerConfig: ./docker-config.json
defaultUpstream: quay.io
policy:
  path: policy.json
  reloadTimeout: 45s
log:
  level: DEBUG
  format: json
upstreamTimeouts:
  dial: 1500ms
  responseHeader: 2m
  setup: 45s
  request: 90s
  blobStall: 5m
  lookaside: 20s
cache:
  verdicts:
    size: 5
    acceptTTL: 1h
    denyTTL: 0.5s
clientTimeouts:
  writeStall: 90s
limits:
  blobStreams: 32
auth:
  failedLoginsPerMinute: 12
`)
	dir := filepath.Dir(path)
	cfg, _, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Listen: ":5443",
		Upstreams: []Upstream{
			{Registry: "quay.io", URL: "https://quay.io/", Username: "robot", Password: "s3cret", CAFile: filepath.Join(dir, "ca.pem")},
			{Registry: "ghcr.io", URL: "https://ghcr.io", DockerConfig: filepath.Join(dir, "docker-config.json")},
		},
		DefaultUpstream:  "quay.io",
		Policy:           Policy{Path: filepath.Join(dir, "policy.json"), ReloadTimeout: 45 * time.Second},
		Log:              Log{Level: "DEBUG", Format: "json"},
		UpstreamTimeouts: UpstreamTimeouts{Dial: 1500 * time.Millisecond, ResponseHeader: 2 * time.Minute, Setup: 45 * time.Second, Request: 90 * time.Second, BlobStall: 5 * time.Minute, Lookaside: 20 * time.Second},
		Cache:            Cache{Verdicts: VerdictCache{Size: 5, AcceptTTL: time.Hour, DenyTTL: 500 * time.Millisecond}},
		ClientTimeouts:   ClientTimeouts{WriteStall: 90 * time.Second},
		Limits:           Limits{BlobStreams: 32},
		Content:          Content{TagTTL: time.Minute, MaxStale: 168 * time.Hour},
		Auth:             Auth{FailedLoginsPerMinute: 12},
		File:             path,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load =\n%#v\nwant\n%#v", cfg, want)
	}
}

func TestLoadConfigAbsolutePathsStay(t *testing.T) {
	other := testsupport.ConfigDir(t)
	path := testsupport.WriteConfig(t, strings.Replace(testsupport.GoodConfig, "./policy.json", filepath.Join(other, "policy.json"), 1))
	cfg, _, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(other, "policy.json"); cfg.Policy.Path != want {
		t.Errorf("policy.path = %q, want %q", cfg.Policy.Path, want)
	}
}

// TestLoadConfigRelativeToFile runs from another working directory: relative paths must
// still resolve against the config file's folder.
func TestLoadConfigRelativeToFile(t *testing.T) {
	path := testsupport.WriteConfig(t, testsupport.GoodConfig)
	// Run from the parent folder with a relative path to the file.
	dir := filepath.Dir(path)
	t.Chdir(filepath.Dir(dir))
	cfg, _, err := Load(filepath.Join(filepath.Base(dir), "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(filepath.Dir(path), "policy.json"); cfg.Policy.Path != want {
		t.Errorf("policy.path = %q, want %q", cfg.Policy.Path, want)
	}
	if cfg.File != path {
		t.Errorf("File = %q, want %q", cfg.File, path)
	}
}

func TestLoadConfigBad(t *testing.T) {
	const pol = "policy:\n  path: ./policy.json\n"
	const up = "upstreams:\n  - registry: docker.io\n    url: https://registry-1.docker.io\n"
	tests := []struct {
		name   string
		config string
		want   []string
	}{
		{
			name:   "unknown top-level key",
			config: up + pol + "lisen: 127.0.0.1:5000\n",
			want:   []string{"lisen (line 6): unknown key (expected one of: listen, upstreams, defaultUpstream, policy, log, upstreamTimeouts, cache, clientTimeouts, limits, content, tls, auth, metrics, audit, enforcement)"},
		},
		{
			name:   "unknown key inside an upstream",
			config: up + "  - registry: quay.io\n    url: https://quay.io\n    usr: robot\n" + pol,
			want:   []string{"upstreams[1].usr (line 6): unknown key (expected one of: registry, url, username, password, dockerConfig, caFile, offline)"},
		},
		{
			name:   "unknown nested keys",
			config: up + pol + "  pth: x\nlog:\n  colour: red\ncache:\n  verdict:\n    size: 1\n",
			want: []string{
				"policy.pth (line 6): unknown key (expected one of: path, registriesDir, reloadTimeout)",
				"log.colour (line 8): unknown key (expected one of: level, format)",
				"cache.verdict (line 10): unknown key (expected one of: verdicts)",
			},
		},
		{
			name:   "operations: missing files name their key",
			config: up + pol + "tls:\n  certFile: ./nope.pem\n  keyFile: ./nope.key\n  clientCAFile: ./noca.pem\nauth:\n  htpasswd: ./nohtpasswd\n",
			want: []string{
				"tls.certFile (line 7): " + "{dir}/nope.pem does not exist (relative paths are relative to the config file's folder)",
				"tls.keyFile (line 8): " + "{dir}/nope.key does not exist (relative paths are relative to the config file's folder)",
				"tls.clientCAFile (line 9): " + "{dir}/noca.pem does not exist (relative paths are relative to the config file's folder)",
				"auth.htpasswd (line 11): " + "{dir}/nohtpasswd does not exist (relative paths are relative to the config file's folder)",
			},
		},
		{
			name:   "operations: half a TLS pair, client CAs without TLS",
			config: up + pol + "tls:\n  keyFile: ./ca.pem\n",
			want:   []string{"tls.certFile (line 6): required when tls.keyFile is set"},
		},
		{
			name:   "operations: bad addresses, audit folder, warn scopes",
			config: up + pol + "metrics:\n  listen: nowhere\naudit:\n  path: ./nodir/audit.jsonl\nenforcement:\n  warn: [\"library/alpine\", \"\", \"docker.io/library\"]\n",
			want: []string{
				`metrics.listen (line 7): "nowhere" is not host:port (such as 127.0.0.1:5000 or :5000)`,
				"audit.path (line 9): the folder of {dir}/nodir/audit.jsonl: {dir}/nodir does not exist (relative paths are relative to the config file's folder)",
				`enforcement.warn[0] (line 11): "library/alpine" is not fully qualified: it must start with the registry (docker.io/library/alpine, not alpine)`,
				`enforcement.warn[1] (line 11): the empty scope is not allowed (it would cover every image); name the registries`,
			},
		},
		{
			name:   "string key of the wrong type",
			config: "listen: 5000\n" + up + pol,
			want:   []string{"listen (line 1): expected a string, got an integer"},
		},
		{
			name:   "integer key of the wrong type",
			config: up + pol + "cache:\n  verdicts:\n    size: many\n",
			want:   []string{`cache.verdicts.size (line 8): not an integer: "many"`},
		},
		{
			name:   "list where a string belongs",
			config: up + pol + "defaultUpstream: [docker.io]\n",
			want:   []string{"defaultUpstream (line 6): expected a string, got a list"},
		},
		{
			name:   "upstreams is a mapping",
			config: "upstreams:\n  docker.io: https://registry-1.docker.io\n" + pol,
			want:   []string{"upstreams (line 1): expected a list, got a mapping"},
		},
		{
			name:   "policy is a string",
			config: up + "policy: ./policy.json\n",
			want:   []string{"policy (line 4): expected a mapping of keys to values, got a string"},
		},
		{
			name:   "upstream entry is a string",
			config: "upstreams:\n  - docker.io\n" + pol,
			want:   []string{"upstreams[0] (line 2): expected a mapping of keys to values, got a string"},
		},
		{
			name:   "missing upstreams",
			config: pol,
			want:   []string{"upstreams: at least one upstream is required (a list of entries with registry and url)"},
		},
		{
			name:   "empty upstreams",
			config: "upstreams: []\n" + pol,
			want:   []string{"upstreams (line 1): at least one upstream is required (a list of entries with registry and url)"},
		},
		{
			name:   "upstream without registry or url",
			config: "upstreams:\n  - username: robot\n    password: pw\n" + pol,
			want: []string{
				"upstreams[0].registry (line 2): required: the registry name clients and signatures use, such as docker.io",
				"upstreams[0].url (line 2): required: where the registry's API is reached, such as https://registry-1.docker.io",
			},
		},
		{
			name:   "url not http or https",
			config: "upstreams:\n  - registry: docker.io\n    url: ftp://registry-1.docker.io\n" + pol,
			want:   []string{`upstreams[0].url (line 3): "ftp://registry-1.docker.io" must start with https:// (or http:// for a plain-text registry)`},
		},
		{
			name:   "url without scheme",
			config: "upstreams:\n  - registry: docker.io\n    url: registry-1.docker.io\n" + pol,
			want:   []string{`upstreams[0].url (line 3): "registry-1.docker.io" must start with https:// (or http:// for a plain-text registry)`},
		},
		{
			name:   "url with a path",
			config: "upstreams:\n  - registry: docker.io\n    url: https://registry-1.docker.io/v2/\n" + pol,
			want:   []string{`upstreams[0].url (line 3): "https://registry-1.docker.io/v2/" must not have a path: registries serve their API at /v2/`},
		},
		{
			name:   "url with a query",
			config: "upstreams:\n  - registry: docker.io\n    url: https://registry-1.docker.io?x=1\n" + pol,
			want:   []string{`upstreams[0].url (line 3): "https://registry-1.docker.io?x=1" must not have a query`},
		},
		{
			name:   "url with a fragment",
			config: "upstreams:\n  - registry: docker.io\n    url: https://registry-1.docker.io#x\n" + pol,
			want:   []string{`upstreams[0].url (line 3): "https://registry-1.docker.io#x" must not have a fragment`},
		},
		{
			name:   "url without host",
			config: "upstreams:\n  - registry: docker.io\n    url: https://\n" + pol,
			want:   []string{`upstreams[0].url (line 3): "https:" has no host`},
		},
		{
			name:   "url with a bad port",
			config: "upstreams:\n  - registry: docker.io\n    url: https://r.example:99999\n" + pol,
			want:   []string{`upstreams[0].url (line 3): "https://r.example:99999" has an invalid port`},
		},
		{
			name:   "url with credentials",
			config: "upstreams:\n  - registry: docker.io\n    url: https://robot:pw@registry-1.docker.io\n" + pol,
			want:   []string{"upstreams[0].url (line 3): must not contain credentials; use username and password, or dockerConfig"},
		},
		{
			name:   "duplicate registry",
			config: up + "  - registry: docker.io\n    url: https://mirror.gcr.io\n" + pol,
			want:   []string{`upstreams[1].registry (line 4): "docker.io" is already used by upstreams[0]; each registry may appear once`},
		},
		{
			name:   "registry not lower-case",
			config: "upstreams:\n  - registry: Quay.io\n    url: https://quay.io\n" + pol,
			want:   []string{`upstreams[0].registry (line 2): "Quay.io" must be lower-case`},
		},
		{
			name:   "registry with a path",
			config: "upstreams:\n  - registry: quay.io/team\n    url: https://quay.io\n" + pol,
			want:   []string{`upstreams[0].registry (line 2): "quay.io/team" must be a registry host[:port] without a path`},
		},
		{
			name:   "registry that is not a host name",
			config: "upstreams:\n  - registry: myregistry\n    url: https://myregistry\n" + pol,
			want:   []string{`upstreams[0].registry (line 2): "myregistry" is not a registry host name (it needs a dot, a port, or to be localhost)`},
		},
		{
			name:   "registry in a non-canonical spelling",
			config: "upstreams:\n  - registry: index.docker.io\n    url: https://registry-1.docker.io\n" + pol,
			want:   []string{`upstreams[0].registry (line 2): "index.docker.io" is spelt "docker.io" in image names; use that`},
		},
		{
			name:   "registry with an invalid character",
			config: "upstreams:\n  - registry: bad_host.example\n    url: https://bad.example\n" + pol,
			want:   []string{`upstreams[0].registry (line 2): "bad_host.example" is not a valid registry host[:port]`},
		},
		{
			name:   "defaultUpstream names no upstream",
			config: up + pol + "defaultUpstream: quay.io\n",
			want:   []string{`defaultUpstream (line 6): "quay.io" names no upstream (configured: docker.io)`},
		},
		{
			name:   "missing policy.path",
			config: up + "policy:\n  registriesDir: ./registries.d\n",
			want:   []string{"policy.path (line 4): required: the containers-policy.json file to enforce"},
		},
		{
			name:   "missing policy",
			config: up,
			want:   []string{"policy.path: required: the containers-policy.json file to enforce"},
		},
		{
			name:   "policy.path does not exist",
			config: up + "policy:\n  path: ./nope.json\n",
			want:   []string{"policy.path (line 5): {dir}/nope.json does not exist (relative paths are relative to the config file's folder)"},
		},
		{
			name:   "policy.path is a folder",
			config: up + "policy:\n  path: ./registries.d\n",
			want:   []string{"policy.path (line 5): {dir}/registries.d is not a regular file"},
		},
		{
			name:   "registriesDir is a file",
			config: up + pol + "  registriesDir: ./policy.json\n",
			want:   []string{"policy.registriesDir (line 6): {dir}/policy.json is not a folder"},
		},
		{
			name:   "registriesDir does not exist",
			config: up + pol + "  registriesDir: ./nope.d\n",
			want:   []string{"policy.registriesDir (line 6): {dir}/nope.d does not exist (relative paths are relative to the config file's folder)"},
		},
		{
			name:   "caFile and dockerConfig do not exist",
			config: up + "    caFile: missing-ca.pem\n    dockerConfig: missing.json\n" + pol,
			want: []string{
				"upstreams[0].dockerConfig (line 5): {dir}/missing.json does not exist (relative paths are relative to the config file's folder)",
				"upstreams[0].caFile (line 4): {dir}/missing-ca.pem does not exist (relative paths are relative to the config file's folder)",
			},
		},
		{
			name:   "username without password",
			config: up + "    username: robot\n" + pol,
			want:   []string{"upstreams[0].password (line 2): required when username is set"},
		},
		{
			name:   "username and dockerConfig",
			config: up + "    username: robot\n    password: pw\n    dockerConfig: docker-config.json\n" + pol,
			want:   []string{"upstreams[0].dockerConfig (line 6): set either username and password, or dockerConfig, not both"},
		},
		{
			name:   "bad duration",
			config: up + pol + "upstreamTimeouts:\n  dial: 5x\n",
			want:   []string{`upstreamTimeouts.dial (line 7): not a duration: "5x" (write a number with a unit, such as 30s or 5m)`},
		},
		{
			name:   "duration without a unit",
			config: up + pol + "cache:\n  verdicts:\n    denyTTL: 60\n",
			want:   []string{"cache.verdicts.denyTTL (line 8): expected a duration with a unit such as 30s or 5m, got an integer"},
		},
		{
			name:   "zero and negative values",
			config: up + pol + "upstreamTimeouts:\n  dial: 0s\n  responseHeader: -1s\ncache:\n  verdicts:\n    size: 0\n    acceptTTL: 0s\n    denyTTL: -5m\n",
			want: []string{
				"upstreamTimeouts.dial (line 7): must be positive, got 0s",
				"upstreamTimeouts.responseHeader (line 8): must be positive, got -1s",
				"cache.verdicts.size (line 11): must be at least 1, got 0",
				"cache.verdicts.acceptTTL (line 12): must be positive, got 0s",
				"cache.verdicts.denyTTL (line 13): must be positive, got -5m0s",
			},
		},
		{
			name:   "zero and negative upstream deadlines",
			config: up + pol + "upstreamTimeouts:\n  setup: 0s\n  request: -30s\n  blobStall: 0ms\n  lookaside: -1s\n",
			want: []string{
				"upstreamTimeouts.setup (line 7): must be positive, got 0s",
				"upstreamTimeouts.request (line 8): must be positive, got -30s",
				"upstreamTimeouts.blobStall (line 9): must be positive, got 0s",
				"upstreamTimeouts.lookaside (line 10): must be positive, got -1s",
			},
		},
		{
			name:   "negative failed login limit",
			config: up + pol + "auth:\n  failedLoginsPerMinute: -1\n",
			want:   []string{"auth.failedLoginsPerMinute (line 7): must not be negative (0 means no limit), got -1"},
		},
		{
			name:   "upstream deadline without a unit",
			config: up + pol + "upstreamTimeouts:\n  blobStall: 60\n",
			want:   []string{"upstreamTimeouts.blobStall (line 7): expected a duration with a unit such as 30s or 5m, got an integer"},
		},
		{
			name:   "reload timeout zero",
			config: up + "policy:\n  path: ./policy.json\n  reloadTimeout: 0s\n",
			want:   []string{"policy.reloadTimeout (line 6): must be positive, got 0s"},
		},
		{
			name:   "reload timeout negative",
			config: up + "policy:\n  path: ./policy.json\n  reloadTimeout: -1m\n",
			want:   []string{"policy.reloadTimeout (line 6): must be positive, got -1m0s"},
		},
		{
			name:   "reload timeout without a unit",
			config: up + "policy:\n  path: ./policy.json\n  reloadTimeout: 30\n",
			want:   []string{"policy.reloadTimeout (line 6): expected a duration with a unit such as 30s or 5m, got an integer"},
		},
		{
			name:   "bad log settings",
			config: up + pol + "log:\n  level: loud\n  format: xml\n",
			want: []string{
				`log.level (line 7): "loud" is not one of debug, info, warn, error`,
				`log.format (line 8): "xml" is not one of text, json`,
			},
		},
		{
			name:   "bad listen address",
			config: up + pol + "listen: localhost\n",
			want:   []string{`listen (line 6): "localhost" is not host:port (such as 127.0.0.1:5000 or :5000)`},
		},
		{
			name:   "bad listen port",
			config: up + pol + "listen: 127.0.0.1:http\n",
			want:   []string{`listen (line 6): "127.0.0.1:http" has an invalid port`},
		},
		{
			name:   "key given twice in different case",
			config: up + pol + "listen: 127.0.0.1:5000\nListen: 0.0.0.0:5000\n",
			want:   []string{"listen (line 7): given twice (first on line 6)"},
		},
		{
			name:   "key given twice",
			config: up + pol + "listen: 127.0.0.1:5000\nlisten: 0.0.0.0:5000\n",
			want:   []string{"listen (line 7): given twice (first on line 6)"},
		},
		{
			name:   "not YAML",
			config: "upstreams: [\n",
			want:   []string{"not valid YAML: line 1: did not find expected node content"},
		},
		{
			name: "content store mistakes",
			config: up + pol + "content:\n  storage:\n    filesystem: {rootdirectory: ./data}\n    s3: {bucket: b}\n" +
				"    redirect: {disable: true}\n  maxSize: lots\n  tagTTL: -1s\n  maxStale: -2h\n",
			want: []string{
				"content.maxSize (line 11): not a size: \"lots\" (write bytes, or a number with a unit such as 512MiB or 50GiB)",
				"content.storage.redirect (line 10): is not part of content.storage: pullgate serves, deletes and caches kept content itself",
				"content.storage (line 7): name one storage driver, not 2 (filesystem, s3)",
				"content.tagTTL (line 12): must not be negative (0 means always ask the upstream)",
				"content.maxStale (line 13): write -1 for forever, 0 for never, or a duration such as 168h",
			},
		},
		{
			name:   "unknown storage driver",
			config: up + pol + "content:\n  storage:\n    floppy: {}\n",
			want:   []string{"content.storage.floppy (line 8): unknown storage driver (known: filesystem, inmemory, s3)"},
		},
		{
			name:   "offline without a content store",
			config: "upstreams:\n  - registry: docker.io\n    offline: true\n" + pol,
			want:   []string{"upstreams[0].offline (line 3): needs a content store (content.storage) to serve from"},
		},
		{
			name:   "not a mapping",
			config: "- listen\n",
			want:   []string{"line 1: the configuration must be a YAML mapping of keys to values, got a list"},
		},
		{
			name:   "two documents",
			config: up + pol + "---\nlisten: :5000\n",
			want:   []string{"the file must hold exactly one YAML document"},
		},
		{
			name:   "merge keys",
			config: "base: &b\n  registry: docker.io\n" + "upstreams:\n  - <<: *b\n    url: https://registry-1.docker.io\n" + pol,
			want: []string{
				"base (line 1): unknown key (expected one of: listen, upstreams, defaultUpstream, policy, log, upstreamTimeouts, cache, clientTimeouts, limits, content, tls, auth, metrics, audit, enforcement)",
				"upstreams[0].<< (line 4): YAML merge keys are not supported; write the keys out",
			},
		},
		{
			name:   "empty file",
			config: "",
			want: []string{
				"upstreams: at least one upstream is required (a list of entries with registry and url)",
				"policy.path: required: the containers-policy.json file to enforce",
			},
		},
		{
			name: "every problem at once",
			config: `listen: [1]
lisen: x
upstreams:
  - registry: docker.io
    url: https://registry-1.docker.io
  - registry: docker.io
    url: ftp://x
    usr: me
defaultUpstream: quay.io
policy:
  registriesDir: ./nope
upstreamTimeouts:
  dial: 10
log:
  level: loud
`,
			want: []string{
				"listen (line 1): expected a string, got a list",
				"lisen (line 2): unknown key (expected one of: listen, upstreams, defaultUpstream, policy, log, upstreamTimeouts, cache, clientTimeouts, limits, content, tls, auth, metrics, audit, enforcement)",
				"upstreams[1].usr (line 8): unknown key (expected one of: registry, url, username, password, dockerConfig, caFile, offline)",
				"upstreamTimeouts.dial (line 13): expected a duration with a unit such as 30s or 5m, got an integer",
				`upstreams[1].registry (line 6): "docker.io" is already used by upstreams[0]; each registry may appear once`,
				`upstreams[1].url (line 7): "ftp://x" must start with https:// (or http:// for a plain-text registry)`,
				`defaultUpstream (line 9): "quay.io" names no upstream (configured: docker.io, docker.io)`,
				"policy.path (line 10): required: the containers-policy.json file to enforce",
				"policy.registriesDir (line 11): {dir}/nope does not exist (relative paths are relative to the config file's folder)",
				`log.level (line 15): "loud" is not one of debug, info, warn, error`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := testsupport.WriteConfig(t, tt.config)
			cfg, _, err := Load(path)
			if err == nil {
				t.Fatalf("Load accepted the configuration: %+v", cfg)
			}
			got := problemsOf(t, err)
			var want []string
			for _, w := range tt.want {
				want = append(want, strings.ReplaceAll(w, "{dir}", filepath.Dir(path)))
			}
			if !slices.Equal(got, want) {
				t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
			// The message lists every problem and names the file.
			msg := err.Error()
			if !strings.Contains(msg, path) {
				t.Errorf("message does not name the file:\n%s", msg)
			}
			for _, w := range want {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q:\n%s", w, msg)
				}
			}
			if n := fmt.Sprintf("(%d %s)", len(want), plural(len(want), "problem", "problems")); !strings.Contains(msg, n) {
				t.Errorf("message lacks the count %s:\n%s", n, msg)
			}
		})
	}
}

func TestLoadConfigFileErrors(t *testing.T) {
	if _, _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want ErrNotExist", err)
	}
	if _, _, err := Load(t.TempDir()); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("folder: err = %v", err)
	}
	big := filepath.Join(t.TempDir(), "big.yaml")
	testsupport.WriteFile(t, big, bytes.Repeat([]byte("#"), maxConfigSize+1))
	if _, _, err := Load(big); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big file: err = %v", err)
	}
}

// TestEnvironmentNames pins the variable of every scalar key: adding a key means adding it
// here, to the README and to config.example.yaml.
func TestEnvironmentNames(t *testing.T) {
	var got []string
	for _, k := range scalarKeys(reflect.TypeFor[Config](), "") {
		got = append(got, envName(k))
	}
	want := []string{
		"PULLGATE_LISTEN",
		"PULLGATE_DEFAULTUPSTREAM",
		"PULLGATE_POLICY_PATH",
		"PULLGATE_POLICY_REGISTRIESDIR",
		"PULLGATE_POLICY_RELOADTIMEOUT",
		"PULLGATE_LOG_LEVEL",
		"PULLGATE_LOG_FORMAT",
		"PULLGATE_UPSTREAMTIMEOUTS_DIAL",
		"PULLGATE_UPSTREAMTIMEOUTS_RESPONSEHEADER",
		"PULLGATE_UPSTREAMTIMEOUTS_SETUP",
		"PULLGATE_UPSTREAMTIMEOUTS_REQUEST",
		"PULLGATE_UPSTREAMTIMEOUTS_BLOBSTALL",
		"PULLGATE_UPSTREAMTIMEOUTS_LOOKASIDE",
		"PULLGATE_CACHE_VERDICTS_SIZE",
		"PULLGATE_CACHE_VERDICTS_ACCEPTTTL",
		"PULLGATE_CACHE_VERDICTS_DENYTTL",
		"PULLGATE_CLIENTTIMEOUTS_WRITESTALL",
		"PULLGATE_LIMITS_BLOBSTREAMS",
		"PULLGATE_CONTENT_MAXSIZE",
		"PULLGATE_CONTENT_TAGTTL",
		"PULLGATE_CONTENT_MAXSTALE",
		"PULLGATE_TLS_CERTFILE",
		"PULLGATE_TLS_KEYFILE",
		"PULLGATE_TLS_CLIENTCAFILE",
		"PULLGATE_AUTH_HTPASSWD",
		"PULLGATE_AUTH_FAILEDLOGINSPERMINUTE",
		"PULLGATE_METRICS_LISTEN",
		"PULLGATE_AUDIT_PATH",
		"PULLGATE_ENFORCEMENT_WARN",
	}
	if !slices.Equal(got, want) {
		t.Errorf("environment variables = %q, want %q", got, want)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	tests := []struct {
		env   map[string]string
		check func(t *testing.T, dir string, cfg *Config)
	}{
		{map[string]string{"PULLGATE_LISTEN": ":6000"}, func(t *testing.T, _ string, cfg *Config) {
			if cfg.Listen != ":6000" {
				t.Errorf("Listen = %q", cfg.Listen)
			}
		}},
		{map[string]string{"PULLGATE_DEFAULTUPSTREAM": "127.0.0.1:5001"}, func(t *testing.T, _ string, cfg *Config) {
			if cfg.DefaultUpstream != "127.0.0.1:5001" {
				t.Errorf("DefaultUpstream = %q", cfg.DefaultUpstream)
			}
		}},
		{map[string]string{"PULLGATE_POLICY_PATH": "other-policy.json"}, func(t *testing.T, dir string, cfg *Config) {
			if want := filepath.Join(dir, "other-policy.json"); cfg.Policy.Path != want {
				t.Errorf("Policy.Path = %q, want %q (relative to the config file)", cfg.Policy.Path, want)
			}
		}},
		{map[string]string{"PULLGATE_POLICY_REGISTRIESDIR": "other.d"}, func(t *testing.T, dir string, cfg *Config) {
			if want := filepath.Join(dir, "other.d"); cfg.Policy.RegistriesDir != want {
				t.Errorf("Policy.RegistriesDir = %q, want %q", cfg.Policy.RegistriesDir, want)
			}
		}},
		{map[string]string{"PULLGATE_ENFORCEMENT_WARN": "docker.io/library, quay.io"}, func(t *testing.T, _ string, cfg *Config) {
			if !slices.Equal(cfg.Enforcement.Warn, []string{"docker.io/library", "quay.io"}) {
				t.Errorf("Enforcement.Warn = %q", cfg.Enforcement.Warn)
			}
		}},
		{map[string]string{"PULLGATE_ENFORCEMENT_WARN": `["docker.io/library/alpine:3.20"]`, "PULLGATE_METRICS_LISTEN": "127.0.0.1:9090"}, func(t *testing.T, _ string, cfg *Config) {
			if !slices.Equal(cfg.Enforcement.Warn, []string{"docker.io/library/alpine:3.20"}) || cfg.Metrics.Listen != "127.0.0.1:9090" {
				t.Errorf("Enforcement.Warn = %q, Metrics.Listen = %q", cfg.Enforcement.Warn, cfg.Metrics.Listen)
			}
		}},
		{map[string]string{"PULLGATE_POLICY_RELOADTIMEOUT": "2s"}, func(t *testing.T, _ string, cfg *Config) {
			if cfg.Policy.ReloadTimeout != 2*time.Second {
				t.Errorf("Policy.ReloadTimeout = %s, want 2s", cfg.Policy.ReloadTimeout)
			}
		}},
		{map[string]string{"PULLGATE_LOG_LEVEL": "debug", "PULLGATE_LOG_FORMAT": "json"}, func(t *testing.T, _ string, cfg *Config) {
			if cfg.Log != (Log{Level: "debug", Format: "json"}) {
				t.Errorf("Log = %+v", cfg.Log)
			}
		}},
		{map[string]string{"PULLGATE_UPSTREAMTIMEOUTS_DIAL": "3s", "PULLGATE_UPSTREAMTIMEOUTS_RESPONSEHEADER": "4m"}, func(t *testing.T, _ string, cfg *Config) {
			if cfg.UpstreamTimeouts != (UpstreamTimeouts{Dial: 3 * time.Second, ResponseHeader: 4 * time.Minute, Setup: 30 * time.Second, Request: time.Minute, BlobStall: time.Minute, Lookaside: 15 * time.Second}) {
				t.Errorf("UpstreamTimeouts = %+v", cfg.UpstreamTimeouts)
			}
		}},
		{map[string]string{"PULLGATE_UPSTREAMTIMEOUTS_SETUP": "5s", "PULLGATE_UPSTREAMTIMEOUTS_REQUEST": "20s", "PULLGATE_UPSTREAMTIMEOUTS_BLOBSTALL": "2m", "PULLGATE_UPSTREAMTIMEOUTS_LOOKASIDE": "3s"}, func(t *testing.T, _ string, cfg *Config) {
			if cfg.UpstreamTimeouts != (UpstreamTimeouts{Dial: 10 * time.Second, ResponseHeader: 30 * time.Second, Setup: 5 * time.Second, Request: 20 * time.Second, BlobStall: 2 * time.Minute, Lookaside: 3 * time.Second}) {
				t.Errorf("UpstreamTimeouts = %+v", cfg.UpstreamTimeouts)
			}
		}},
		{map[string]string{"PULLGATE_CACHE_VERDICTS_SIZE": "42", "PULLGATE_CACHE_VERDICTS_ACCEPTTTL": "2h", "PULLGATE_CACHE_VERDICTS_DENYTTL": "5s"}, func(t *testing.T, _ string, cfg *Config) {
			if want := (VerdictCache{Size: 42, AcceptTTL: 2 * time.Hour, DenyTTL: 5 * time.Second}); cfg.Cache.Verdicts != want {
				t.Errorf("Cache.Verdicts = %+v", cfg.Cache.Verdicts)
			}
		}},
		{map[string]string{"PULLGATE_UPSTREAMS": `[{"registry": "quay.io", "url": "https://quay.io"}]`, "PULLGATE_DEFAULTUPSTREAM": "quay.io"}, func(t *testing.T, _ string, cfg *Config) {
			if want := []Upstream{{Registry: "quay.io", URL: "https://quay.io"}}; !reflect.DeepEqual(cfg.Upstreams, want) {
				t.Errorf("Upstreams = %+v", cfg.Upstreams)
			}
		}},
		{map[string]string{"PULLGATE_UPSTREAMS": "- registry: quay.io\n  url: https://quay.io\n  caFile: ca.pem\n", "PULLGATE_DEFAULTUPSTREAM": "quay.io"}, func(t *testing.T, dir string, cfg *Config) {
			if want := []Upstream{{Registry: "quay.io", URL: "https://quay.io", CAFile: filepath.Join(dir, "ca.pem")}}; !reflect.DeepEqual(cfg.Upstreams, want) {
				t.Errorf("Upstreams = %+v", cfg.Upstreams)
			}
		}},
		{map[string]string{
			"PULLGATE_UPSTREAMS_1_USERNAME":     "robot",
			"PULLGATE_UPSTREAMS_1_PASSWORD":     "pw",
			"PULLGATE_UPSTREAMS_1_URL":          "https://127.0.0.1:5002",
			"PULLGATE_UPSTREAMS_1_CAFILE":       "ca.pem",
			"PULLGATE_UPSTREAMS_0_DOCKERCONFIG": "docker-config.json",
			"PULLGATE_UPSTREAMS_0_REGISTRY":     "docker.io",
		}, func(t *testing.T, dir string, cfg *Config) {
			want := []Upstream{
				{Registry: "docker.io", URL: "https://registry-1.docker.io", DockerConfig: filepath.Join(dir, "docker-config.json")},
				{Registry: "127.0.0.1:5001", URL: "https://127.0.0.1:5002", Username: "robot", Password: "pw", CAFile: filepath.Join(dir, "ca.pem")},
			}
			if !reflect.DeepEqual(cfg.Upstreams, want) {
				t.Errorf("Upstreams = %+v, want %+v", cfg.Upstreams, want)
			}
		}},
		{map[string]string{"PULLGATE_LISTEN": ""}, func(t *testing.T, _ string, cfg *Config) {
			if cfg.Listen != "127.0.0.1:5000" {
				t.Errorf("an empty variable changed Listen to %q", cfg.Listen)
			}
		}},
	}
	for _, tt := range tests {
		var names []string
		for k := range tt.env {
			names = append(names, k)
		}
		slices.Sort(names)
		t.Run(strings.Join(names, ","), func(t *testing.T) {
			path := testsupport.WriteConfig(t, testsupport.GoodConfig)
			dir := filepath.Dir(path)
			for _, extra := range []string{"other-policy.json"} {
				testsupport.WriteFile(t, filepath.Join(dir, extra), []byte("{}"))
			}
			if err := os.Mkdir(filepath.Join(dir, "other.d"), 0o700); err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, warnings, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != 0 {
				t.Errorf("warnings: %q", warnings)
			}
			tt.check(t, dir, cfg)
		})
	}
}

func TestEnvironmentErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"bad integer", map[string]string{"PULLGATE_CACHE_VERDICTS_SIZE": "lots"},
			[]string{`cache.verdicts.size (PULLGATE_CACHE_VERDICTS_SIZE): not an integer: "lots"`}},
		{"bad duration", map[string]string{"PULLGATE_UPSTREAMTIMEOUTS_DIAL": "soon"},
			[]string{`upstreamTimeouts.dial (PULLGATE_UPSTREAMTIMEOUTS_DIAL): not a duration: "soon" (write a number with a unit, such as 30s or 5m)`}},
		{"negative upstream deadline", map[string]string{"PULLGATE_UPSTREAMTIMEOUTS_BLOBSTALL": "-1s"},
			[]string{`upstreamTimeouts.blobStall (PULLGATE_UPSTREAMTIMEOUTS_BLOBSTALL): must be positive, got -1s`}},
		{"bad value", map[string]string{"PULLGATE_DEFAULTUPSTREAM": "quay.io"},
			[]string{`defaultUpstream (PULLGATE_DEFAULTUPSTREAM): "quay.io" names no upstream (configured: docker.io, 127.0.0.1:5001)`}},
		{"entry that does not exist", map[string]string{"PULLGATE_UPSTREAMS_2_PASSWORD": "pw"},
			[]string{"upstreams[2] (PULLGATE_UPSTREAMS_2_PASSWORD): no such entry: the variable can only change an upstream that the file (or PULLGATE_UPSTREAMS) lists"}},
		{"unknown upstream key", map[string]string{"PULLGATE_UPSTREAMS_0_TOKEN": "x"},
			[]string{"upstreams[0] (PULLGATE_UPSTREAMS_0_TOKEN): unknown key TOKEN (expected one of: registry, url, username, password, dockerConfig, caFile, offline)"}},
		{"malformed upstream variable", map[string]string{"PULLGATE_UPSTREAMS_X_URL": "x"},
			[]string{"PULLGATE_UPSTREAMS_X_URL: expected PULLGATE_UPSTREAMS_<index>_<KEY>, such as PULLGATE_UPSTREAMS_0_PASSWORD"}},
		{"bad upstream url", map[string]string{"PULLGATE_UPSTREAMS_0_URL": "ftp://x"},
			[]string{`upstreams[0].url (PULLGATE_UPSTREAMS_0_URL): "ftp://x" must start with https:// (or http:// for a plain-text registry)`}},
		{"upstreams list that is not a list", map[string]string{"PULLGATE_UPSTREAMS": `{"registry": "quay.io"}`},
			[]string{"upstreams (PULLGATE_UPSTREAMS): expected a list, got a mapping"}},
		{"upstreams list with an unknown key", map[string]string{"PULLGATE_UPSTREAMS": `[{"registry": "docker.io", "url": "https://registry-1.docker.io", "mirror": true}]`},
			[]string{"upstreams[0].mirror (PULLGATE_UPSTREAMS): unknown key (expected one of: registry, url, username, password, dockerConfig, caFile, offline)"}},
		{"upstreams list that is not YAML", map[string]string{"PULLGATE_UPSTREAMS": `[{`},
			[]string{"upstreams (PULLGATE_UPSTREAMS): not a valid YAML or JSON list"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := testsupport.WriteConfig(t, testsupport.GoodConfig)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, _, err := Load(path)
			got := problemsOf(t, err)
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestEnvironmentUnknownVariableWarns(t *testing.T) {
	path := testsupport.WriteConfig(t, testsupport.GoodConfig)
	t.Setenv("PULLGATE_LISTN", ":1")
	cfg, warnings, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"environment variable PULLGATE_LISTN is not a pullgate setting; ignored"}
	if !slices.Equal(warnings, want) {
		t.Errorf("warnings = %q, want %q", warnings, want)
	}
	if cfg.Listen != "127.0.0.1:5000" {
		t.Errorf("Listen = %q", cfg.Listen)
	}
}

// TestExampleConfig loads the shipped config.example.yaml so that it cannot go stale, and
// checks that it documents every key.
func TestExampleConfig(t *testing.T) {
	const example = "../../config.example.yaml"
	cfg, warnings, err := Load(example)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %q", warnings)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:5000" || cfg.DefaultUpstream != "docker.io" {
		t.Errorf("listen %q, defaultUpstream %q", cfg.Listen, cfg.DefaultUpstream)
	}
	if want := []Upstream{{Registry: "docker.io", URL: "https://registry-1.docker.io"}}; !reflect.DeepEqual(cfg.Upstreams, want) {
		t.Errorf("upstreams = %+v", cfg.Upstreams)
	}
	if want := (Policy{Path: filepath.Join(root, "examples/policy.json"), RegistriesDir: filepath.Join(root, "examples/registries.d"), ReloadTimeout: 30 * time.Second}); cfg.Policy != want {
		t.Errorf("policy = %+v, want %+v", cfg.Policy, want)
	}

	// The files it points at must stay valid for their own loaders.
	if _, err := policy.LoadFile(cfg.Policy.Path); err != nil {
		t.Errorf("example policy: %v", err)
	}
	if _, err := sigsource.LoadRegistriesD(cfg.Policy.RegistriesDir); err != nil {
		t.Errorf("example registries.d: %v", err)
	}

	text, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for _, key := range configKeys(t) {
			if !bytes.Contains(text, []byte(key+":")) {
				missing = append(missing, key)
			}
			f, _ := t.FieldByName(goFieldName(t, key))
			ft := f.Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				walk(ft)
			}
		}
	}
	walk(reflect.TypeFor[Config]())
	if len(missing) > 0 {
		t.Errorf("config.example.yaml does not mention these keys: %q", missing)
	}
}

func TestSecretFormatting(t *testing.T) {
	var empty Secret
	if got := fmt.Sprint(empty); got != "" {
		t.Errorf("empty secret prints %q", got)
	}
	s := Secret("x")
	for _, got := range []string{fmt.Sprint(s), fmt.Sprintf("%#v", s), s.LogValue().String()} {
		if got != "[redacted]" && got != `"[redacted]"` {
			t.Errorf("secret prints %q", got)
		}
	}
}

// TestClientLimitsConfig: clientTimeouts.writeStall and limits.blobStreams have defaults,
// are read from the file and the environment, and refuse values that would disable the
// bounds they enforce.
func TestClientLimitsConfig(t *testing.T) {
	const base = "upstreams:\n  - registry: docker.io\n    url: https://registry-1.docker.io\npolicy:\n  path: policy.json\n"
	tests := []struct {
		name       string
		config     string
		env        map[string]string
		wantStall  time.Duration
		wantStream int
		wantErr    []string
	}{
		{name: "defaults", config: base, wantStall: time.Minute, wantStream: 256},
		{name: "file", config: base + "clientTimeouts:\n  writeStall: 2m\nlimits:\n  blobStreams: 10\n", wantStall: 2 * time.Minute, wantStream: 10},
		{name: "environment", config: base + "limits:\n  blobStreams: 10\n",
			env:       map[string]string{"PULLGATE_CLIENTTIMEOUTS_WRITESTALL": "15s", "PULLGATE_LIMITS_BLOBSTREAMS": "3"},
			wantStall: 15 * time.Second, wantStream: 3},
		{name: "zero and too small", config: base + "clientTimeouts:\n  writeStall: 500ms\nlimits:\n  blobStreams: 0\n",
			wantErr: []string{
				"clientTimeouts.writeStall (line 7): must be at least 1s, got 500ms",
				"limits.blobStreams (line 9): must be at least 1, got 0",
			}},
		{name: "negative", config: base + "clientTimeouts:\n  writeStall: -1s\nlimits:\n  blobStreams: -5\n",
			wantErr: []string{
				"clientTimeouts.writeStall (line 7): must be at least 1s, got -1s",
				"limits.blobStreams (line 9): must be at least 1, got -5",
			}},
		{name: "bad environment", config: base, env: map[string]string{"PULLGATE_LIMITS_BLOBSTREAMS": "many"},
			wantErr: []string{`limits.blobStreams (PULLGATE_LIMITS_BLOBSTREAMS): not an integer: "many"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := testsupport.WriteConfig(t, tt.config)
			testsupport.WriteFile(t, filepath.Join(filepath.Dir(path), "policy.json"), []byte(`{"default":[{"type":"reject"}]}`))
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, _, err := Load(path)
			if tt.wantErr != nil {
				var ce *Error
				if !errors.As(err, &ce) {
					t.Fatalf("Load: %v, want a *Error", err)
				}
				var got []string
				for _, p := range ce.Problems {
					got = append(got, p.String())
				}
				if !reflect.DeepEqual(got, tt.wantErr) {
					t.Fatalf("problems:\n%q\nwant\n%q", got, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ClientTimeouts.WriteStall != tt.wantStall || cfg.Limits.BlobStreams != tt.wantStream {
				t.Fatalf("writeStall %s, blobStreams %d; want %s, %d", cfg.ClientTimeouts.WriteStall, cfg.Limits.BlobStreams, tt.wantStall, tt.wantStream)
			}
		})
	}
}

func TestLoadConfigContent(t *testing.T) {
	const base = "upstreams:\n  - registry: docker.io\n    offline: true\npolicy:\n  path: ./policy.json\n"
	tests := []struct {
		name   string
		config string
		want   Content
	}{
		{"inmemory, sizes and forever", base + "content:\n  storage:\n    inmemory: {}\n  maxSize: 50GiB\n  tagTTL: 0s\n  maxStale: -1\n",
			Content{Storage: map[string]any{"inmemory": map[string]any{}}, MaxSize: 50 << 30, TagTTL: 0, MaxStale: -1}},
		{"filesystem with the defaults", base + "content:\n  storage:\n    filesystem:\n      rootdirectory: ./data\n",
			Content{Storage: map[string]any{"filesystem": map[string]any{"rootdirectory": "./data"}}, TagTTL: time.Minute, MaxStale: 168 * time.Hour}},
		{"decimal units and bytes", base + "content:\n  storage:\n    inmemory:\n  maxSize: 2GB\n",
			Content{Storage: map[string]any{"inmemory": nil}, MaxSize: 2e9, TagTTL: time.Minute, MaxStale: 168 * time.Hour}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := testsupport.WriteConfig(t, tc.config)
			cfg, _, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Content, tc.want) {
				t.Fatalf("content = %#v\nwant %#v", cfg.Content, tc.want)
			}
			if !cfg.Content.Enabled() || !cfg.Upstreams[0].Offline {
				t.Fatalf("enabled=%v offline=%v", cfg.Content.Enabled(), cfg.Upstreams[0].Offline)
			}
		})
	}
}
