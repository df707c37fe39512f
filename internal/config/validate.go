package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"

	"github.com/pullgate/pullgate/policy"
)

// validate checks the decoded configuration's values and returns every problem, section
// by section in the order of the keys in the file's documentation.
func (cfg *Config) validate() []problem {
	var ps []problem
	for _, section := range []func(*Config, problemAdder){
		validateListen, validateUpstreams, validateDefaultUpstream, validatePolicy, validateLog,
		validateUpstreamTimeouts, validateCache, validateClientTimeouts, validateLimits, validateContent,
		validateTLS, validateAuth, validateMetrics, validateAudit, validateEnforcement,
	} {
		section(cfg, func(key, format string, args ...any) {
			ps = append(ps, problem{Key: key, Message: fmt.Sprintf(format, args...)})
		})
	}
	return ps
}

// problemAdder records one problem about key.
type problemAdder func(key, format string, args ...any)

func validateListen(cfg *Config, add problemAdder) {
	if msg := checkListen(cfg.Listen); msg != "" {
		add("listen", "%s", msg)
	}
}

func validateUpstreams(cfg *Config, add problemAdder) {
	if len(cfg.Upstreams) == 0 {
		add("upstreams", "at least one upstream is required (a list of entries with registry and url)")
	}
	firstUse := map[string]int{}
	for i, u := range cfg.Upstreams {
		key := "upstreams[" + strconv.Itoa(i) + "]"
		if msg := checkRegistryName(u.Registry); msg != "" {
			add(key+".registry", "%s", msg)
		} else if j, dup := firstUse[u.Registry]; dup {
			add(key+".registry", "%q is already used by upstreams[%d]; each registry may appear once", u.Registry, j)
		} else {
			firstUse[u.Registry] = i
		}
		if u.Offline && u.URL == "" {
			// never contacted: no address needed
		} else if msg := checkUpstreamURL(u.URL); msg != "" {
			add(key+".url", "%s", msg)
		}
		switch {
		case u.Username != "" && u.Password == "":
			add(key+".password", "required when username is set")
		case u.Username == "" && u.Password != "":
			add(key+".username", "required when password is set")
		}
		if u.DockerConfig != "" && (u.Username != "" || u.Password != "") {
			add(key+".dockerConfig", "set either username and password, or dockerConfig, not both")
		}
		if msg := checkFile(u.DockerConfig); msg != "" {
			add(key+".dockerConfig", "%s", msg)
		}
		if msg := checkFile(u.CAFile); msg != "" {
			add(key+".caFile", "%s", msg)
		}
	}
}

// storageDrivers are the distribution storage drivers content.storage may name.
var storageDrivers = []string{"filesystem", "inmemory", "s3"}

// storageNotContent are the keys of distribution's storage: section that are not part of
// content.storage: pullgate serves the bytes itself and manages deletion and caching.
var storageNotContent = []string{"redirect", "delete", "cache", "maintenance"}

func validateContent(cfg *Config, add problemAdder) {
	ct := cfg.Content
	if !ct.Enabled() {
		for i, u := range cfg.Upstreams {
			if u.Offline {
				add("upstreams["+strconv.Itoa(i)+"].offline", "needs a content store (content.storage) to serve from")
			}
		}
		return
	}
	var drivers []string
	for k, v := range ct.Storage {
		switch {
		case slices.Contains(storageNotContent, k):
			add("content.storage."+k, "is not part of content.storage: pullgate serves, deletes and caches kept content itself")
		case slices.Contains(storageDrivers, k):
			drivers = append(drivers, k)
			if v != nil {
				if _, ok := v.(map[string]any); !ok {
					add("content.storage."+k, "expected a mapping of the driver's parameters")
				}
			}
		default:
			add("content.storage."+k, "unknown storage driver (known: %s)", strings.Join(storageDrivers, ", "))
		}
	}
	if len(drivers) > 1 {
		slices.Sort(drivers)
		add("content.storage", "name one storage driver, not %d (%s)", len(drivers), strings.Join(drivers, ", "))
	}
	if ct.MaxSize < 0 {
		add("content.maxSize", "must not be negative (0 means no limit)")
	}
	if ct.TagTTL < 0 {
		add("content.tagTTL", "must not be negative (0 means always ask the upstream)")
	}
	if ct.MaxStale < 0 && ct.MaxStale != -1 {
		add("content.maxStale", "write -1 for forever, 0 for never, or a duration such as 168h")
	}
}

func validateDefaultUpstream(cfg *Config, add problemAdder) {
	// Without upstreams validateUpstreams says everything.
	if cfg.DefaultUpstream == "" || len(cfg.Upstreams) == 0 {
		return
	}
	for _, u := range cfg.Upstreams {
		// Only a valid name counts, as only those are registered for the lookup.
		if u.Registry == cfg.DefaultUpstream && checkRegistryName(u.Registry) == "" {
			return
		}
	}
	add("defaultUpstream", "%q names no upstream (configured: %s)", cfg.DefaultUpstream, RegistryList(cfg.Upstreams))
}

func validatePolicy(cfg *Config, add problemAdder) {
	if cfg.Policy.Path == "" {
		add("policy.path", "required: the containers-policy.json file to enforce")
	} else if msg := checkFile(cfg.Policy.Path); msg != "" {
		add("policy.path", "%s", msg)
	}
	if cfg.Policy.RegistriesDir != "" {
		if st, err := os.Stat(cfg.Policy.RegistriesDir); err != nil {
			add("policy.registriesDir", "%s", describeStatError(cfg.Policy.RegistriesDir, err))
		} else if !st.IsDir() {
			add("policy.registriesDir", "%s is not a folder", cfg.Policy.RegistriesDir)
		}
	}
	if cfg.Policy.ReloadTimeout <= 0 {
		add("policy.reloadTimeout", "must be positive, got %s", cfg.Policy.ReloadTimeout)
	}
}

func validateLog(cfg *Config, add problemAdder) {
	switch strings.ToLower(cfg.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", "%q is not one of debug, info, warn, error", cfg.Log.Level)
	}
	switch strings.ToLower(cfg.Log.Format) {
	case "text", "json":
	default:
		add("log.format", "%q is not one of text, json", cfg.Log.Format)
	}
}

func validateUpstreamTimeouts(cfg *Config, add problemAdder) {
	for _, d := range []struct {
		key   string
		value time.Duration
	}{
		{"upstreamTimeouts.dial", cfg.UpstreamTimeouts.Dial},
		{"upstreamTimeouts.responseHeader", cfg.UpstreamTimeouts.ResponseHeader},
		{"upstreamTimeouts.setup", cfg.UpstreamTimeouts.Setup},
		{"upstreamTimeouts.request", cfg.UpstreamTimeouts.Request},
		{"upstreamTimeouts.blobStall", cfg.UpstreamTimeouts.BlobStall},
		{"upstreamTimeouts.lookaside", cfg.UpstreamTimeouts.Lookaside},
	} {
		if d.value <= 0 {
			add(d.key, "must be positive, got %s", d.value)
		}
	}
}

func validateCache(cfg *Config, add problemAdder) {
	if cfg.Cache.Verdicts.Size <= 0 {
		add("cache.verdicts.size", "must be at least 1, got %d", cfg.Cache.Verdicts.Size)
	}
	if cfg.Cache.Verdicts.AcceptTTL <= 0 {
		add("cache.verdicts.acceptTTL", "must be positive, got %s", cfg.Cache.Verdicts.AcceptTTL)
	}
	if cfg.Cache.Verdicts.DenyTTL <= 0 {
		add("cache.verdicts.denyTTL", "must be positive, got %s", cfg.Cache.Verdicts.DenyTTL)
	}
}

func validateClientTimeouts(cfg *Config, add problemAdder) {
	if cfg.ClientTimeouts.WriteStall < time.Second {
		add("clientTimeouts.writeStall", "must be at least 1s, got %s", cfg.ClientTimeouts.WriteStall)
	}
}

func validateLimits(cfg *Config, add problemAdder) {
	if cfg.Limits.BlobStreams < 1 {
		add("limits.blobStreams", "must be at least 1, got %d", cfg.Limits.BlobStreams)
	}
}

func validateTLS(cfg *Config, add problemAdder) {
	t := cfg.TLS
	switch {
	case t.CertFile == "" && t.KeyFile != "":
		add("tls.certFile", "required when tls.keyFile is set")
	case t.CertFile != "" && t.KeyFile == "":
		add("tls.keyFile", "required when tls.certFile is set")
	}
	if t.ClientCAFile != "" && !t.Enabled() {
		add("tls.clientCAFile", "client certificates need TLS: set tls.certFile and tls.keyFile too")
	}
	for _, f := range []struct{ key, path string }{
		{"tls.certFile", t.CertFile}, {"tls.keyFile", t.KeyFile}, {"tls.clientCAFile", t.ClientCAFile},
	} {
		if msg := checkFile(f.path); msg != "" {
			add(f.key, "%s", msg)
		}
	}
}

func validateAuth(cfg *Config, add problemAdder) {
	if msg := checkFile(cfg.Auth.Htpasswd); msg != "" {
		add("auth.htpasswd", "%s", msg)
	}
	if cfg.Auth.FailedLoginsPerMinute < 0 {
		add("auth.failedLoginsPerMinute", "must not be negative (0 means no limit), got %d", cfg.Auth.FailedLoginsPerMinute)
	}
}

func validateMetrics(cfg *Config, add problemAdder) {
	if cfg.Metrics.Listen == "" {
		return
	}
	if msg := checkListen(cfg.Metrics.Listen); msg != "" {
		add("metrics.listen", "%s", msg)
		return
	}
	if cfg.Metrics.Listen == cfg.Listen && !strings.HasSuffix(cfg.Listen, ":0") {
		add("metrics.listen", "%q is also listen; the metrics need their own address", cfg.Metrics.Listen)
	}
}

func validateAudit(cfg *Config, add problemAdder) {
	p := cfg.Audit.Path
	if p == "" {
		return
	}
	if st, err := os.Stat(p); err == nil {
		if !st.Mode().IsRegular() {
			add("audit.path", "%s is not a regular file", p)
		}
		return
	}
	dir := filepath.Dir(p)
	if st, err := os.Stat(dir); err != nil {
		add("audit.path", "the folder of %s: %s", p, describeStatError(dir, err))
	} else if !st.IsDir() {
		add("audit.path", "%s is not a folder", dir)
	}
}

func validateEnforcement(cfg *Config, add problemAdder) {
	for i, scope := range cfg.Enforcement.Warn {
		if err := policy.ValidateWarnScope(scope); err != nil {
			add("enforcement.warn["+strconv.Itoa(i)+"]", "%v", err)
		}
	}
}

// checkListen checks a host:port listen address.
func checkListen(addr string) string {
	if addr == "" {
		return "required: the address to listen on, such as 127.0.0.1:5000"
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("%q is not host:port (such as 127.0.0.1:5000 or :5000)", addr)
	}
	if !validPort(port, 0) {
		return fmt.Sprintf("%q has an invalid port", addr)
	}
	return ""
}

// validPort reports whether port is a decimal TCP port from lowest to 65535 (a listen
// address may ask for 0, any free port; an upstream may not).
func validPort(port string, lowest int) bool {
	n, err := strconv.Atoi(port)
	return err == nil && n >= lowest && n <= 65535
}

// checkRegistryName checks that name is a registry host[:port] written the way docker
// normalises it, since it is compared with image names and signature identities verbatim.
func checkRegistryName(name string) string {
	if name == "" {
		return "required: the registry name clients and signatures use, such as docker.io"
	}
	if name != strings.ToLower(name) {
		return fmt.Sprintf("%q must be lower-case", name)
	}
	if strings.Contains(name, "/") {
		return fmt.Sprintf("%q must be a registry host[:port] without a path", name)
	}
	named, err := reference.ParseNormalizedNamed(name + "/pullgate-check")
	if err != nil {
		return fmt.Sprintf("%q is not a valid registry host[:port]", name)
	}
	switch got := reference.Domain(named); {
	case got == name:
		return ""
	case got == "":
		return fmt.Sprintf("%q is not a valid registry host[:port]", name)
	case got == "docker.io" && name != "index.docker.io":
		return fmt.Sprintf("%q is not a registry host name (it needs a dot, a port, or to be localhost)", name)
	default:
		return fmt.Sprintf("%q is spelt %q in image names; use that", name, got)
	}
}

// checkUpstreamURL checks an upstream API location: http or https, a host, nothing else.
// Messages never echo the URL's user information.
func checkUpstreamURL(raw string) string {
	if raw == "" {
		return "required: where the registry's API is reached, such as https://registry-1.docker.io"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "not a valid URL"
	}
	if u.User != nil {
		return "must not contain credentials; use username and password, or dockerConfig"
	}
	shown := u.Redacted()
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("%q must start with https:// (or http:// for a plain-text registry)", shown)
	case u.Host == "" || u.Opaque != "":
		return fmt.Sprintf("%q has no host", shown)
	case u.Path != "" && u.Path != "/":
		return fmt.Sprintf("%q must not have a path: registries serve their API at /v2/", shown)
	case u.RawQuery != "" || u.ForceQuery:
		return fmt.Sprintf("%q must not have a query", shown)
	case u.Fragment != "":
		return fmt.Sprintf("%q must not have a fragment", shown)
	}
	if port := u.Port(); port != "" && !validPort(port, 1) {
		return fmt.Sprintf("%q has an invalid port", shown)
	}
	return ""
}

// checkFile checks that path, when set, names a readable regular file.
func checkFile(path string) string {
	if path == "" {
		return ""
	}
	st, err := os.Stat(path)
	if err != nil {
		return describeStatError(path, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Sprintf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("%s cannot be read: %v", path, unwrapPathError(err))
	}
	f.Close()
	return ""
}

func describeStatError(path string, err error) string {
	if os.IsNotExist(err) {
		return fmt.Sprintf("%s does not exist (relative paths are relative to the config file's folder)", path)
	}
	return fmt.Sprintf("%s: %v", path, unwrapPathError(err))
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func RegistryList(us []Upstream) string {
	var names []string
	for _, u := range us {
		if u.Registry != "" {
			names = append(names, u.Registry)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
