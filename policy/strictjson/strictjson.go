// Package strictjson decodes JSON the way security configuration must be decoded: keys are
// matched exactly (case-sensitive), unknown and duplicate keys are errors, and nothing may
// follow the top-level value. encoding/json alone matches keys case-insensitively and keeps
// the last of duplicate keys, which would let a typo or a smuggled key change a policy.
//
// This follows containers/image's "paranoid" decoder (signature/internal/json.go).
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
)

// Error is a decoding error with the JSON path where it happened, such as
// transports.docker["quay.io"][0].keyPaths.
type Error struct {
	Path string
	Err  error
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Err.Error()
	}
	return e.Path + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// Key returns the path segment for an object key: `.key`, or `["key"]` when the key is not
// a plain identifier.
func Key(key string) string {
	if identifier.MatchString(key) {
		return "." + key
	}
	return "[" + strconv.Quote(key) + "]"
}

// Index returns the path segment for an array element: `[i]`.
func Index(i int) string { return "[" + strconv.Itoa(i) + "]" }

// WithPath prefixes err's path with segment (from Key or Index). A nil err stays nil.
func WithPath(segment string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return &Error{Path: trimDot(segment + addDot(e.Path)), Err: e.Err}
	}
	return &Error{Path: trimDot(segment), Err: err}
}

func addDot(path string) string {
	if path == "" || path[0] == '[' {
		return path
	}
	return "." + path
}

func trimDot(path string) string {
	if len(path) > 0 && path[0] == '.' {
		return path[1:]
	}
	return path
}

// ErrUnknownKey is wrapped by errors about keys that a Fields function does not know.
var ErrUnknownKey = errors.New("unknown key")

// Fields returns the destination for the value of key, or nil when the key is not allowed.
// Destinations are passed to Unmarshal (so they may implement json.Unmarshaler, typically
// by calling back into this package).
type Fields func(key string) any

// DecodeObject decodes data, which must hold exactly one JSON object, into the destinations
// fields gives for each key. It returns the keys present, in order. Errors: data that is not
// an object (null included), a key fields does not know, a duplicate key, a value that does
// not decode into its destination, and any data after the object.
func DecodeObject(data []byte, fields Fields) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, &Error{Err: fmt.Errorf("invalid JSON: %w", err)}
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, &Error{Err: fmt.Errorf("expected a JSON object, got %s", describe(tok))}
	}
	var keys []string
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, &Error{Err: fmt.Errorf("invalid JSON: %w", err)}
		}
		key, ok := tok.(string)
		if !ok { // cannot happen with encoding/json, which only returns string keys here
			return nil, &Error{Err: fmt.Errorf("invalid object key %v", tok)}
		}
		if seen[key] {
			return nil, WithPath(Key(key), errors.New("duplicate key"))
		}
		seen[key] = true
		keys = append(keys, key)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, WithPath(Key(key), fmt.Errorf("invalid JSON: %w", err))
		}
		dest := fields(key)
		if dest == nil {
			return nil, WithPath(Key(key), ErrUnknownKey)
		}
		if err := Unmarshal(raw, dest); err != nil {
			return nil, WithPath(Key(key), err)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, &Error{Err: fmt.Errorf("invalid JSON: %w", err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &Error{Err: errors.New("unexpected data after the JSON object")}
	}
	return keys, nil
}

// DecodeExact decodes a JSON object that must have exactly the keys of fields, each once.
func DecodeExact(data []byte, fields map[string]any) error {
	keys, err := DecodeObject(data, func(key string) any { return fields[key] })
	if err != nil {
		return err
	}
	if len(keys) != len(fields) {
		present := make(map[string]bool, len(keys))
		for _, k := range keys {
			present[k] = true
		}
		for k := range fields {
			if !present[k] {
				return &Error{Err: fmt.Errorf("missing required key %q", k)}
			}
		}
	}
	return nil
}

// Unmarshal decodes one JSON value into dest. Destinations that implement json.Unmarshaler
// decide for themselves; for plain destinations encoding/json is used, except that null is
// refused for strings, numbers and booleans (encoding/json would silently keep the zero
// value) and numbers must fit their type exactly (1.5 is not an integer).
func Unmarshal(raw json.RawMessage, dest any) error {
	if _, ok := dest.(json.Unmarshaler); !ok && isNull(raw) {
		switch dest.(type) {
		case *string, *bool, *int, *int64, *uint64, *float64, *[]byte:
			return errors.New("null is not allowed here")
		}
	}
	if err := json.Unmarshal(raw, dest); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("expected %s, got JSON %s", te.Type, te.Value)
		}
		return err
	}
	return nil
}

// DecodeArray decodes a JSON array, calling elem for each element's raw value. null is
// refused.
func DecodeArray(raw json.RawMessage, elem func(i int, raw json.RawMessage) error) error {
	if isNull(raw) {
		return errors.New("expected an array, got null")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return errors.New("expected an array")
	}
	for i, item := range items {
		if err := elem(i, item); err != nil {
			return WithPath(Index(i), err)
		}
	}
	return nil
}

// IsNull reports whether raw is the JSON literal null.
func IsNull(raw json.RawMessage) bool { return isNull(raw) }

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

func describe(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case json.Delim:
		return "'" + v.String() + "'"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	}
	return fmt.Sprintf("%v", tok)
}
