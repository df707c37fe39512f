package policy

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pullgate/pullgate/policy/strictjson"
)

// rawObject is a JSON object decoded strictly (no duplicate keys, nothing after it) into
// its raw member values, for the caller to check member by member.
type rawObject struct {
	keys   []string
	values map[string]json.RawMessage
}

// decodeRawObject decodes data, which must be a JSON object.
func decodeRawObject(data []byte) (rawObject, error) {
	ptrs := make(map[string]*json.RawMessage)
	keys, err := strictjson.DecodeObject(data, func(key string) any {
		p := new(json.RawMessage)
		ptrs[key] = p
		return p
	})
	if err != nil {
		return rawObject{}, err
	}
	o := rawObject{keys: keys, values: make(map[string]json.RawMessage, len(ptrs))}
	for k, p := range ptrs {
		o.values[k] = *p
	}
	return o, nil
}

// decodeObjectOnly decodes data, which must be a JSON object with no key but allowed.
func decodeObjectOnly(data []byte, allowed ...string) (rawObject, error) {
	o, err := decodeRawObject(data)
	if err != nil {
		return rawObject{}, err
	}
	if err := o.only(allowed...); err != nil {
		return rawObject{}, err
	}
	return o, nil
}

// has reports whether key is present.
func (o rawObject) has(key string) bool {
	_, ok := o.values[key]
	return ok
}

// get returns the raw value of key and whether it is present.
func (o rawObject) get(key string) (json.RawMessage, bool) {
	v, ok := o.values[key]
	return v, ok
}

// only fails on the first key not in allowed, naming it.
func (o rawObject) only(allowed ...string) error {
	for _, k := range o.keys {
		known := false
		for _, a := range allowed {
			if k == a {
				known = true
				break
			}
		}
		if !known {
			return strictjson.WithPath(strictjson.Key(k), strictjson.ErrUnknownKey)
		}
	}
	return nil
}

// exactly fails unless the keys are exactly fields, each once.
func (o rawObject) exactly(fields ...string) error {
	if err := o.only(fields...); err != nil {
		return err
	}
	for _, f := range fields {
		if !o.has(f) {
			return fmt.Errorf("missing required key %q", f)
		}
	}
	return nil
}

// The value decoders below give JSON values exactly the meaning containers/image gives
// them: it decodes each member with encoding/json, so null leaves a string empty and a
// slice nil (which is then judged as "not set" by the checks that follow), and []byte
// values are standard base64.

func decodeString(raw json.RawMessage) (string, error) {
	var s string
	return s, decodeValue(raw, &s)
}

func decodeStrings(raw json.RawMessage) ([]string, error) {
	var s []string
	return s, decodeValue(raw, &s)
}

func decodeBytes(raw json.RawMessage) ([]byte, error) {
	var b []byte
	return b, decodeValue(raw, &b)
}

func decodeBytesList(raw json.RawMessage) ([][]byte, error) {
	var b [][]byte
	return b, decodeValue(raw, &b)
}

func decodeValue(raw json.RawMessage, dst any) error {
	err := json.Unmarshal(raw, dst)
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	var b64Err base64.CorruptInputError
	switch {
	case errors.As(err, &typeErr):
		return fmt.Errorf("expected %s, got JSON %s", describeType(dst), typeErr.Value)
	case errors.As(err, &b64Err):
		return fmt.Errorf("invalid base64 data at byte %d", int64(b64Err))
	}
	return err
}

func describeType(dst any) string {
	switch dst.(type) {
	case *string:
		return "a string"
	case *[]string:
		return "an array of strings"
	case *[]byte:
		return "a base64 string"
	case *[][]byte:
		return "an array of base64 strings"
	}
	return fmt.Sprintf("%T", dst)
}
