package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"go.yaml.in/yaml/v3"
)

// Error lists every problem found in a configuration, so that one run shows them all.
type Error struct {
	File     string
	Problems []problem
}

func (e *Error) Error() string {
	var b strings.Builder
	n := len(e.Problems)
	fmt.Fprintf(&b, "invalid configuration %s (%d %s):", e.File, n, plural(n, "problem", "problems"))
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Unwrap lets callers test errors.Is(err, ErrInvalid).
func (e *Error) Unwrap() error { return ErrInvalid }

// problem is one thing wrong with the configuration.
type problem struct {
	// Key is the key's path (upstreams[1].url); empty for the document as a whole.
	Key string
	// Where says where the value came from: "line 7", "PULLGATE_LISTEN".
	Where   string
	Message string
}

func (p problem) String() string {
	var b strings.Builder
	if p.Key != "" {
		b.WriteString(p.Key)
		if p.Where != "" {
			b.WriteString(" (" + p.Where + ")")
		}
		b.WriteString(": ")
	} else if p.Where != "" {
		b.WriteString(p.Where + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// checker collects problems from every stage of loading: the YAML document walk, the
// environment, the strict decode and validation.
type checker struct {
	problems []problem
	// lines maps a key path to the line it was written on, for messages.
	lines map[string]int
	// fromEnv maps a key path to the environment variable that set it.
	fromEnv map[string]string
	// documentOK is false when the file is not a readable YAML mapping.
	documentOK bool
	// reportedUnknown is true once the document walk has reported an unknown key.
	reportedUnknown bool
	// source, when set, replaces line numbers in messages: the document being walked came
	// from that environment variable.
	source string
	// freeForm holds free-form mappings (content.storage) exactly as written: viper would
	// drop a key whose value is an empty mapping (inmemory: {}).
	freeForm map[string]map[string]any
}

func newChecker() *checker {
	return &checker{lines: map[string]int{}, fromEnv: map[string]string{}, freeForm: map[string]map[string]any{}}
}

// add records p, filling in where its value came from.
func (c *checker) add(p problem) {
	if p.Where == "" && p.Key != "" {
		p.Where = c.sourceOf(p.Key)
	}
	for _, q := range c.problems {
		if q == p {
			return
		}
	}
	c.problems = append(c.problems, p)
}

// sourceOf says where key's value came from: the environment variable that set it or one
// of its parents, else its line in the file.
func (c *checker) sourceOf(key string) string {
	for k := key; k != ""; k = parentKey(k) {
		if env, ok := c.fromEnv[k]; ok {
			return env
		}
	}
	// A missing key is located by the nearest parent that was written.
	for k := key; k != ""; k = parentKey(k) {
		if line, ok := c.lines[k]; ok {
			return "line " + strconv.Itoa(line)
		}
	}
	return ""
}

// parentKey returns the path of key's parent: upstreams[1].url -> upstreams[1] -> upstreams.
func parentKey(key string) string {
	i := strings.LastIndexAny(key, ".[")
	if i < 0 {
		return ""
	}
	return key[:i]
}

// where locates node for a message.
func (c *checker) where(n *yaml.Node) string {
	if c.source != "" {
		return c.source
	}
	return lineOf(n)
}

// covered reports whether a problem was already recorded for key or one of its parents: a
// later stage (the decoder, validation) then has nothing useful to add about it.
func (c *checker) covered(key string) bool {
	for _, p := range c.problems {
		if p.Key == key || strings.HasPrefix(key, p.Key+".") || strings.HasPrefix(key, p.Key+"[") {
			return true
		}
	}
	return false
}

// addValidation records validation problems about keys nothing else has complained about.
func (c *checker) addValidation(ps []problem) {
	for _, p := range ps {
		if !c.covered(p.Key) {
			c.add(p)
		}
	}
}

// checkDocument parses raw as YAML and walks it against Config: unknown keys, keys given
// twice (viper ignores key case, so `listen` and `Listen` collide), values of the wrong
// shape, several documents. It records the line of every key.
func (c *checker) checkDocument(raw []byte) {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			c.documentOK = true // an empty file: validation names the required keys
			return
		}
		c.add(problem{Message: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")})
		return
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		c.add(problem{Message: "the file must hold exactly one YAML document"})
		return
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if isNull(root) {
		c.documentOK = true
		return
	}
	if root.Kind != yaml.MappingNode {
		c.add(problem{Where: lineOf(root), Message: "the configuration must be a YAML mapping of keys to values, got " + nodeKind(root)})
		return
	}
	c.documentOK = true
	c.walk(root, reflect.TypeFor[Config](), "")
}

// walk checks node against the Go type t; path is the key path of node.
func (c *checker) walk(node *yaml.Node, t reflect.Type, path string) {
	if node.Kind == yaml.AliasNode && node.Alias != nil {
		node = node.Alias
	}
	if isNull(node) {
		return
	}
	switch {
	case t == reflect.TypeFor[time.Duration]():
		if node.Kind != yaml.ScalarNode {
			c.add(problem{Key: path, Message: "expected a duration such as 30s, got " + nodeKind(node)})
		}
	case t.Kind() == reflect.Map:
		// Free-form parameters (content.storage: a driver's own keys), checked by
		// validation and by the driver itself.
		if node.Kind != yaml.MappingNode {
			c.add(problem{Key: path, Message: "expected a mapping of keys to values, got " + nodeKind(node)})
			return
		}
		var m map[string]any
		if err := node.Decode(&m); err != nil {
			c.add(problem{Key: path, Message: "cannot read: " + err.Error()})
			return
		}
		if m == nil {
			m = map[string]any{}
		}
		c.freeForm[path] = m
		for i := 0; i+1 < len(node.Content); i += 2 {
			if c.source == "" {
				c.lines[join(path, node.Content[i].Value)] = node.Content[i].Line
			}
		}
	case t.Kind() == reflect.Struct:
		if node.Kind != yaml.MappingNode {
			c.add(problem{Key: path, Message: "expected a mapping of keys to values, got " + nodeKind(node)})
			return
		}
		c.walkMapping(node, t, path)
	case t.Kind() == reflect.Slice:
		if node.Kind != yaml.SequenceNode {
			c.add(problem{Key: path, Message: "expected a list, got " + nodeKind(node)})
			return
		}
		for i, item := range node.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			if c.source == "" {
				c.lines[p] = item.Line
			}
			c.walk(item, t.Elem(), p)
		}
	default:
		if node.Kind != yaml.ScalarNode {
			c.add(problem{Key: path, Message: "expected " + describeType(t) + ", got " + nodeKind(node)})
		}
	}
}

func (c *checker) walkMapping(node *yaml.Node, t reflect.Type, path string) {
	seen := map[string]int{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, v := node.Content[i], node.Content[i+1]
		name := k.Value
		if k.Kind != yaml.ScalarNode {
			c.add(problem{Key: path, Where: c.where(k), Message: "keys must be plain strings"})
			continue
		}
		if name == "<<" {
			c.add(problem{Key: join(path, name), Where: c.where(k), Message: "YAML merge keys are not supported; write the keys out"})
			continue
		}
		field, ok := fieldByKey(t, name)
		if !ok {
			c.reportedUnknown = true
			c.add(problem{Key: join(path, name), Where: c.where(k), Message: "unknown key" + suggestKeys(t)})
			continue
		}
		key := join(path, field)
		lower := strings.ToLower(field)
		if first, dup := seen[lower]; dup {
			c.add(problem{Key: key, Where: c.where(k), Message: fmt.Sprintf("given twice (first on line %d)", first)})
			continue
		}
		seen[lower] = k.Line
		if c.source == "" {
			c.lines[key] = k.Line
		}
		sf, _ := t.FieldByName(goFieldName(t, field))
		c.walk(v, sf.Type, key)
	}
}

// configKeys lists the YAML keys of a struct type, in field order.
func configKeys(t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		tag := f.Tag.Get("mapstructure")
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		keys = append(keys, tag)
	}
	return keys
}

// fieldByKey finds the key of t matching name the way viper does (ignoring case).
func fieldByKey(t reflect.Type, name string) (string, bool) {
	for _, k := range configKeys(t) {
		if strings.EqualFold(k, name) {
			return k, true
		}
	}
	return "", false
}

// goFieldName returns the Go field name of t whose mapstructure tag is key.
func goFieldName(t reflect.Type, key string) string {
	for f := range t.Fields() {
		if f.Tag.Get("mapstructure") == key {
			return f.Name
		}
	}
	return ""
}

// suggestKeys names the allowed keys, which is what a typo needs.
func suggestKeys(t reflect.Type) string {
	return " (expected one of: " + strings.Join(configKeys(t), ", ") + ")"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func lineOf(n *yaml.Node) string {
	if n.Line == 0 {
		return ""
	}
	return "line " + strconv.Itoa(n.Line)
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!str":
			return "a string"
		}
		return "a scalar"
	}
	return "something else"
}

// describeType names a Go type for messages.
func describeType(t reflect.Type) string {
	if t == nil {
		return "nothing"
	}
	if t == reflect.TypeFor[time.Duration]() {
		return "a duration"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return t.String()
}

// strictDecoding turns off viper's weak typing (a list where a string belongs is an error,
// not a conversion) and installs the only conversions allowed: duration strings, and
// integers written as strings, which is how environment variables arrive.
func strictDecoding(dc *mapstructure.DecoderConfig) {
	dc.WeaklyTypedInput = false
	dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(durationHook, byteSizeHook, intFromStringHook)
}

// durationHook accepts Go duration strings (30s, 5m) for time.Duration fields. A bare number
// other than 0 and -1 is refused: `dial: 10` would silently mean ten nanoseconds.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[time.Duration]() || from == to {
		return data, nil
	}
	// 0 and -1 are the bare numbers allowed: zero is zero in any unit ("never", "always
	// ask"), and -1 is "forever" (content.maxStale).
	if n, ok := data.(int); ok && (n == 0 || n == -1) {
		return time.Duration(n), nil
	}
	if s, ok := data.(string); ok && (strings.TrimSpace(s) == "0" || strings.TrimSpace(s) == "-1") {
		return time.Duration(map[string]int{"0": 0, "-1": -1}[strings.TrimSpace(s)]), nil
	}
	s, ok := data.(string)
	if !ok {
		return nil, fmt.Errorf("expected a duration with a unit such as 30s or 5m, got %s", describeType(from))
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("not a duration: %q (write a number with a unit, such as 30s or 5m)", s)
	}
	return d, nil
}

// byteSizeHook accepts sizes for ByteSize fields: an integer (bytes), or a number with a
// unit: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024).
func byteSizeHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[ByteSize]() || from == to {
		return data, nil
	}
	switch v := data.(type) {
	case int:
		return ByteSize(v), nil
	case int64:
		return ByteSize(v), nil
	case string:
		n, err := ParseByteSize(v)
		if err != nil {
			return nil, err
		}
		return n, nil
	}
	return nil, fmt.Errorf("expected a size such as 50GiB, got %s", describeType(from))
}

// ParseByteSize reads a size: an integer (bytes), or a number with a unit (512MiB, 2GB).
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("not a size: %q (write bytes, or a number with a unit such as 512MiB or 50GiB)", s)
	}
	return ByteSize(n * mult), nil
}

// intFromStringHook converts decimal strings for int fields.
func intFromStringHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Int {
		return data, nil
	}
	s, _ := data.(string)
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("not an integer: %q", s)
	}
	return n, nil
}

// addDecodeError turns the decoder's joined errors into problems that name their key.
func (c *checker) addDecodeError(err error) {
	for _, leaf := range decodeLeaves(err) {
		var de *mapstructure.DecodeError
		if !errors.As(leaf, &de) {
			c.add(problem{Message: leaf.Error()})
			continue
		}
		key := de.Name()
		cause := de.Unwrap()
		msg := cause.Error()
		if strings.HasPrefix(msg, "has invalid keys: ") {
			if c.reportedUnknown {
				continue
			}
			c.add(problem{Key: key, Message: "unknown keys: " + strings.TrimPrefix(msg, "has invalid keys: ")})
			continue
		}
		if c.covered(key) {
			continue
		}
		var ute *mapstructure.UnconvertibleTypeError
		switch {
		case errors.As(cause, &ute):
			msg = "expected " + describeType(ute.Expected.Type()) + ", got " + describeValue(ute.Value)
		case isSecretKey(key):
			// Never echo a secret, even inside a parser's message.
			msg = "invalid value (not shown)"
		}
		c.add(problem{Key: key, Message: msg})
	}
}

// decodeLeaves flattens the tree of joined and wrapped decoder errors.
func decodeLeaves(err error) []error {
	if de, ok := err.(*mapstructure.DecodeError); ok {
		// A DecodeError may wrap the joined errors of its children.
		if joined, ok := de.Unwrap().(interface{ Unwrap() []error }); ok {
			return decodeLeaves(joined.(error))
		}
		return []error{de}
	}
	switch e := err.(type) {
	case interface{ Unwrap() []error }:
		var out []error
		for _, sub := range e.Unwrap() {
			out = append(out, decodeLeaves(sub)...)
		}
		return out
	case interface{ Unwrap() error }:
		if inner := e.Unwrap(); inner != nil {
			return decodeLeaves(inner)
		}
	}
	return []error{err}
}

func describeValue(v any) string {
	switch v.(type) {
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "a mapping"
	}
	return describeType(reflect.TypeOf(v))
}

// isSecretKey reports whether key holds a credential.
func isSecretKey(key string) bool {
	return strings.HasSuffix(strings.ToLower(key), "password")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
