package config

import (
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// envPrefix starts every environment variable pullgate reads.
const envPrefix = "PULLGATE_"

// upstreamsEnv replaces the whole upstreams list (YAML or JSON); upstreamsEnv + "_<i>_<KEY>"
// overrides one key of entry i (PULLGATE_UPSTREAMS_0_PASSWORD).
const upstreamsEnv = envPrefix + "UPSTREAMS"

// envName is the variable that overrides key: PULLGATE_ + the upper-case path with _ for .
// (policy.registriesDir -> PULLGATE_POLICY_REGISTRIESDIR).
func envName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// scalarKeys lists the path of every scalar key of t outside lists, in field order.
func scalarKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for _, key := range configKeys(t) {
		f, _ := t.FieldByName(goFieldName(t, key))
		path := join(prefix, key)
		switch {
		case f.Type == reflect.TypeFor[time.Duration]():
			keys = append(keys, path)
		case f.Type.Kind() == reflect.Struct:
			keys = append(keys, scalarKeys(f.Type, path)...)
		case f.Type == reflect.TypeFor[[]string]():
			keys = append(keys, path) // a list of strings: applyStringList
		case f.Type.Kind() == reflect.Slice:
			// Lists of entries are overridden by upstreamsEnv, not by BindEnv.
		case f.Type.Kind() == reflect.Map:
			// Free-form parameters (content.storage) are written in the file.
		default:
			keys = append(keys, path)
		}
	}
	return keys
}

// applyEnv makes every PULLGATE_* variable override its key. viper only consults the
// environment for keys it knows, so each scalar key is bound explicitly; the upstreams list
// is set from upstreamsEnv and its per-entry variables. Empty variables are ignored, as
// viper does. It returns warnings about PULLGATE_* variables that name no key.
func (c *checker) applyEnv(v *viper.Viper) []string {
	known := map[string]bool{}
	for _, key := range scalarKeys(reflect.TypeFor[Config](), "") {
		name := envName(key)
		known[name] = true
		if stringListKeys[key] {
			if value := os.Getenv(name); value != "" {
				c.fromEnv[key] = name
				c.applyStringList(v, key, name, value)
			}
			continue
		}
		// BindEnv only fails without a key.
		_ = v.BindEnv(key, name)
		if os.Getenv(name) != "" {
			c.fromEnv[key] = name
		}
	}

	if list := os.Getenv(upstreamsEnv); list != "" {
		c.applyUpstreamsList(v, list)
	}

	var names []string
	for _, kv := range os.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix) && value != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var warnings []string
	for _, name := range names {
		switch {
		case known[name] || name == upstreamsEnv:
		case strings.HasPrefix(name, upstreamsEnv+"_"):
			c.applyUpstreamField(v, name, os.Getenv(name))
		default:
			warnings = append(warnings, "environment variable "+name+" is not a pullgate setting; ignored")
		}
	}
	return warnings
}

// stringListKeys are the keys holding a list of strings; their variable is a YAML or JSON
// list (["a","b"]) or the items separated by commas (a,b).
var stringListKeys = map[string]bool{"enforcement.warn": true}

// applyStringList sets key from the list in value.
func (c *checker) applyStringList(v *viper.Viper, key, name, value string) {
	var list []string
	if strings.HasPrefix(strings.TrimSpace(value), "[") {
		if err := yaml.Unmarshal([]byte(value), &list); err != nil {
			c.add(problem{Key: key, Where: name, Message: "not a valid YAML or JSON list of strings"})
			return
		}
	} else {
		for _, item := range strings.Split(value, ",") {
			list = append(list, strings.TrimSpace(item))
		}
	}
	items := make([]any, len(list))
	for i, s := range list {
		items[i] = s
	}
	v.Set(key, items)
}

// applyUpstreamsList replaces the upstreams list with the YAML (or JSON) list in value.
func (c *checker) applyUpstreamsList(v *viper.Viper, value string) {
	c.fromEnv["upstreams"] = upstreamsEnv
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(value), &doc); err != nil {
		c.add(problem{Key: "upstreams", Message: "not a valid YAML or JSON list"})
		return
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	c.source = upstreamsEnv
	c.walk(root, reflect.TypeFor[[]Upstream](), "upstreams")
	c.source = ""
	var list any
	if err := root.Decode(&list); err != nil {
		c.add(problem{Key: "upstreams", Message: "not a valid YAML or JSON list"})
		return
	}
	v.Set("upstreams", list)
}

// applyUpstreamField applies PULLGATE_UPSTREAMS_<i>_<KEY>=value to entry i, which must exist.
func (c *checker) applyUpstreamField(v *viper.Viper, name, value string) {
	rest := strings.TrimPrefix(name, upstreamsEnv+"_")
	index, field, ok := strings.Cut(rest, "_")
	i, err := strconv.Atoi(index)
	if !ok || err != nil || i < 0 || strconv.Itoa(i) != index {
		c.add(problem{Where: name, Message: "expected " + upstreamsEnv + "_<index>_<KEY>, such as " + upstreamsEnv + "_0_PASSWORD"})
		return
	}
	key := ""
	for _, k := range configKeys(reflect.TypeFor[Upstream]()) {
		if strings.ToUpper(k) == field {
			key = k
		}
	}
	path := "upstreams[" + index + "]"
	if key == "" {
		c.add(problem{Key: path, Where: name, Message: "unknown key " + field + suggestKeys(reflect.TypeFor[Upstream]())})
		return
	}
	list, ok := v.Get("upstreams").([]any)
	if !ok || i >= len(list) {
		c.add(problem{Key: path, Where: name, Message: "no such entry: the variable can only change an upstream that the file (or " + upstreamsEnv + ") lists"})
		return
	}
	entry, ok := list[i].(map[string]any)
	if !ok {
		return // the document walk has reported the entry's shape
	}
	updated := make(map[string]any, len(entry)+1)
	for k, val := range entry {
		if !strings.EqualFold(k, key) {
			updated[k] = val
		}
	}
	updated[strings.ToLower(key)] = value
	list = slices.Clone(list)
	list[i] = updated
	v.Set("upstreams", list)
	c.fromEnv[path+"."+key] = name
}
