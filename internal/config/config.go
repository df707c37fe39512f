// Package config reads pullgate's configuration: the YAML file (strict: unknown keys, keys
// given twice and values of the wrong shape are refused with their line), PULLGATE_*
// environment overrides, defaults, and one validation per section. Load returns every
// problem at once. Every command (serve, verify, and the ones to come) reads its
// configuration here.
package config

import (
	"github.com/pullgate/pullgate/internal/readfile"

	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/spf13/viper"
)

// Config is pullgate's configuration. The mapstructure tags are the YAML keys (DESIGN.md
// "Configuration" contract plus the documented extras); config.example.yaml explains each.
type Config struct {
	Listen           string           `mapstructure:"listen"`
	Upstreams        []Upstream       `mapstructure:"upstreams"`
	DefaultUpstream  string           `mapstructure:"defaultUpstream"`
	Policy           Policy           `mapstructure:"policy"`
	Log              Log              `mapstructure:"log"`
	UpstreamTimeouts UpstreamTimeouts `mapstructure:"upstreamTimeouts"`
	Cache            Cache            `mapstructure:"cache"`
	ClientTimeouts   ClientTimeouts   `mapstructure:"clientTimeouts"`
	Limits           Limits           `mapstructure:"limits"`
	Content          Content          `mapstructure:"content"`
	TLS              TLS              `mapstructure:"tls"`
	Auth             Auth             `mapstructure:"auth"`
	Metrics          Metrics          `mapstructure:"metrics"`
	Audit            Audit            `mapstructure:"audit"`
	Enforcement      Enforcement      `mapstructure:"enforcement"`

	// File is the absolute path of the file this configuration was read from.
	File string `mapstructure:"-"`
}

// Upstream is one entry of `upstreams`.
type Upstream struct {
	// Registry is the name clients and signatures use (docker.io, 127.0.0.1:5001).
	Registry string `mapstructure:"registry"`
	// URL is where that registry's API is reached (https://registry-1.docker.io).
	URL string `mapstructure:"url"`
	// Username and Password authenticate to the upstream (basic, or to obtain tokens).
	Username string `mapstructure:"username"`
	Password Secret `mapstructure:"password"`
	// DockerConfig is a docker config.json whose credentials are used instead.
	DockerConfig string `mapstructure:"dockerConfig"`
	// CAFile is a PEM bundle of extra roots for the upstream's TLS certificate.
	CAFile string `mapstructure:"caFile"`
	// Offline: the upstream is never contacted; only the content store answers for it
	// (an air-gapped site serving imported images). url may then be left out.
	Offline bool `mapstructure:"offline"`
}

// Content configures the content store. Without Storage nothing is kept and every pull
// is relayed (the first release's behaviour).
type Content struct {
	// Storage is ONE distribution storage driver and its parameters, written as in the
	// storage: section of distribution's config.yml: {filesystem: {rootdirectory: ./data}},
	// {s3: {...}}, {inmemory: {}}. A relative filesystem rootdirectory is relative to the
	// config file's folder.
	Storage map[string]any `mapstructure:"storage"`
	// MaxSize evicts the least recently served images beyond this many bytes; 0 = no limit.
	MaxSize ByteSize `mapstructure:"maxSize"`
	// TagTTL: a tag confirmed upstream less than this ago is answered from the store
	// without asking the upstream; 0 = always ask.
	TagTTL time.Duration `mapstructure:"tagTTL"`
	// MaxStale: with the upstream unreachable a tag keeps its last confirmed digest for
	// this long; negative (written -1) = forever, 0 = never.
	MaxStale time.Duration `mapstructure:"maxStale"`
}

// Enabled reports whether a content store is configured.
func (c Content) Enabled() bool { return len(c.Storage) > 0 }

// ByteSize is a size in bytes, written as an integer or with a unit: 512MiB, 50GiB, 2GB.
type ByteSize int64

// Policy says where the trust policy lives.
type Policy struct {
	// Path is a containers-policy.json(5) file.
	Path string `mapstructure:"path"`
	// RegistriesDir is a containers-registries.d(5) folder; empty means none.
	RegistriesDir string `mapstructure:"registriesDir"`
	// ReloadTimeout bounds a reload (SIGHUP) reading the policy, its key files and
	// registries.d; one that takes longer (a FIFO, a hung network file system) is
	// abandoned and the previous policy stays in force.
	ReloadTimeout time.Duration `mapstructure:"reloadTimeout"`
}

// Log selects the log handler.
type Log struct {
	Level  string `mapstructure:"level"`  // debug, info, warn, error
	Format string `mapstructure:"format"` // text, json
}

// UpstreamTimeouts bounds the waits on upstream registries.
type UpstreamTimeouts struct {
	// Dial bounds connection set-up (TCP and TLS).
	Dial time.Duration `mapstructure:"dial"`
	// ResponseHeader bounds the wait for an upstream's response headers.
	ResponseHeader time.Duration `mapstructure:"responseHeader"`
	// Setup bounds a repository's credential set-up (the /v2/ ping and the token
	// exchange, bodies included).
	Setup time.Duration `mapstructure:"setup"`
	// Request bounds one API request (manifests, tags, referrers, the signature API)
	// with its body, and the wait for a blob answer's headers.
	Request time.Duration `mapstructure:"request"`
	// BlobStall ends a blob download that sends no byte for this long.
	BlobStall time.Duration `mapstructure:"blobStall"`
	// Lookaside bounds one request to a registries.d lookaside (a signature file), from
	// sending it to the last byte of its body.
	Lookaside time.Duration `mapstructure:"lookaside"`
}

// ClientTimeouts bounds the waits on pullgate's own clients.
type ClientTimeouts struct {
	// WriteStall ends a response when the client has taken none of it for this long
	// (128 KiB at most are written under one deadline): a client that stops reading
	// frees its blob stream and upstream connection.
	WriteStall time.Duration `mapstructure:"writeStall"`
}

// Limits bounds what clients can make pullgate hold at once.
type Limits struct {
	// BlobStreams is the most blob bodies relayed from upstreams at once; a request
	// beyond it waits up to 5 s, then is answered 503 UNAVAILABLE with Retry-After.
	BlobStreams int `mapstructure:"blobStreams"`
}

// TLS makes pullgate serve HTTPS on listen. Empty CertFile and KeyFile: plain HTTP.
type TLS struct {
	// CertFile is the PEM certificate chain (leaf first), KeyFile its private key; both
	// are re-read when they change, so a rotation needs no restart.
	CertFile string `mapstructure:"certFile"`
	KeyFile  string `mapstructure:"keyFile"`
	// ClientCAFile, when set, is a PEM bundle of CAs: every client must present a
	// certificate signed by one of them, or the handshake is refused.
	ClientCAFile string `mapstructure:"clientCAFile"`
}

// Enabled reports whether pullgate serves HTTPS.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// Auth configures client authentication on /v2/.
type Auth struct {
	// Htpasswd is a file of user:bcrypt-hash lines (htpasswd -B); empty: no client auth.
	Htpasswd string `mapstructure:"htpasswd"`
	// FailedLoginsPerMinute bounds the wrong credentials one client address (an IPv4
	// address, an IPv6 /64) may send a minute; beyond it, 429 TOOMANYREQUESTS without a
	// bcrypt comparison. 0: no limit.
	FailedLoginsPerMinute int `mapstructure:"failedLoginsPerMinute"`
}

// Metrics configures the operations listener.
type Metrics struct {
	// Listen is where /metrics, /healthz and /readyz are served; empty: not served.
	Listen string `mapstructure:"listen"`
}

// Audit configures the audit trail.
type Audit struct {
	// Path is a file every decision is appended to as one JSON object per line; empty:
	// no audit file.
	Path string `mapstructure:"path"`
}

// Enforcement adjusts how denials are enforced.
type Enforcement struct {
	// Warn lists policy scopes (written as in policy.json's docker transport) whose
	// denials are logged and counted but served.
	Warn []string `mapstructure:"warn"`
}

// Cache configures pullgate's caches.
type Cache struct {
	Verdicts VerdictCache `mapstructure:"verdicts"`
}

// VerdictCache bounds the policy verdict cache: entries, and how long an accepted
// and a denied verdict are remembered (separately, so that revoked and newly signed images
// are noticed in time).
type VerdictCache struct {
	Size      int           `mapstructure:"size"`
	AcceptTTL time.Duration `mapstructure:"acceptTTL"`
	DenyTTL   time.Duration `mapstructure:"denyTTL"`
}

// Secret is a string that never prints: fmt, %v of an enclosing struct and slog all show
// "[redacted]". Reveal returns the value for the one place that needs it.
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString hides the value from %#v.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// LogValue hides the value from slog's text output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText hides the value from encoders (slog's JSON handler marshals structs with
// encoding/json, which ignores LogValue on fields).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// defaults are the values of keys the file does not set. They are registered with viper so
// that an explicit zero in the file (cache.verdicts.size: 0) stays visible to validation.
var defaults = map[string]any{
	"listen":                          "127.0.0.1:5000",
	"policy.reloadTimeout":            30 * time.Second,
	"log.level":                       "info",
	"log.format":                      "text",
	"upstreamTimeouts.dial":           10 * time.Second,
	"upstreamTimeouts.responseHeader": 30 * time.Second,
	"upstreamTimeouts.setup":          30 * time.Second,
	"upstreamTimeouts.request":        60 * time.Second,
	"upstreamTimeouts.blobStall":      60 * time.Second,
	"upstreamTimeouts.lookaside":      15 * time.Second,
	"cache.verdicts.size":             10000,
	"cache.verdicts.acceptTTL":        10 * time.Minute,
	"cache.verdicts.denyTTL":          time.Minute,
	"clientTimeouts.writeStall":       60 * time.Second,
	"limits.blobStreams":              256,
	"auth.failedLoginsPerMinute":      30,
	"content.tagTTL":                  time.Minute,
	"content.maxStale":                168 * time.Hour,
}

// maxConfigSize bounds the configuration file read: a real one is a few KiB, and a
// mistaken path (a disk image, /dev/zero) must not be read into memory.
const maxConfigSize = 1 << 20

// ErrInvalid is wrapped by every error about the configuration's content.
var ErrInvalid = errors.New("invalid configuration")

// Load reads the YAML file at path, applies PULLGATE_* environment overrides, resolves
// relative paths against the file's folder and checks everything. A *Error lists every
// problem found. Warnings are notes that do not prevent starting (an unknown PULLGATE_*
// variable).
func Load(path string) (*Config, []string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config file %s: %w", path, err)
	}
	raw, err := readConfigFile(abs)
	if err != nil {
		return nil, nil, err
	}

	c := newChecker()
	c.checkDocument(raw)
	if !c.documentOK {
		// Not a readable YAML mapping: nothing else can be checked meaningfully.
		return nil, nil, &Error{File: abs, Problems: c.problems}
	}

	v := viper.NewWithOptions(viper.KeyDelimiter("."))
	v.SetConfigType("yaml")
	for key, value := range defaults {
		v.SetDefault(key, value)
	}
	if err := v.ReadConfig(bytes.NewReader(raw)); err != nil {
		// checkDocument has usually explained why already (a key given twice); its words
		// name the key and line.
		if len(c.problems) == 0 {
			c.add(problem{Message: "cannot read YAML: " + err.Error()})
		}
		return nil, nil, &Error{File: abs, Problems: c.problems}
	}
	warnings := c.applyEnv(v)

	// UnmarshalExact refuses unknown keys on its own; checkDocument has already named them
	// with their line and spelling, so addDecodeError keeps the decoder's version only if
	// the document walk missed one.
	cfg := &Config{File: abs}
	if err := v.UnmarshalExact(cfg, strictDecoding); err != nil {
		c.addDecodeError(err)
	}

	if m, ok := c.freeForm["content.storage"]; ok {
		cfg.Content.Storage = m
	}
	cfg.resolvePaths(filepath.Dir(abs))
	c.addValidation(cfg.validate())

	if len(c.problems) > 0 {
		return nil, warnings, &Error{File: abs, Problems: c.problems}
	}
	return cfg, warnings, nil
}

// readConfigFile reads at most maxConfigSize bytes of a regular file.
func readConfigFile(path string) ([]byte, error) {
	raw, err := readfile.Bounded(path, maxConfigSize)
	if readfile.Refused(err) {
		return nil, fmt.Errorf("config file: %w: %w", ErrInvalid, err)
	}
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	return raw, nil
}

// resolvePaths makes every relative file path relative to dir, the config file's folder.
func (cfg *Config) resolvePaths(dir string) {
	resolve := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	resolve(&cfg.Policy.Path)
	resolve(&cfg.Policy.RegistriesDir)
	resolve(&cfg.TLS.CertFile)
	resolve(&cfg.TLS.KeyFile)
	resolve(&cfg.TLS.ClientCAFile)
	resolve(&cfg.Auth.Htpasswd)
	resolve(&cfg.Audit.Path)
	for i := range cfg.Upstreams {
		resolve(&cfg.Upstreams[i].DockerConfig)
		resolve(&cfg.Upstreams[i].CAFile)
	}
}
