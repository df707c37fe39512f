package strictjson

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDecodeObject(t *testing.T) {
	type dst struct {
		A string
		N int64
		R json.RawMessage
	}
	fields := func(d *dst) Fields {
		return func(key string) any {
			switch key {
			case "a":
				return &d.A
			case "n":
				return &d.N
			case "r":
				return &d.R
			}
			return nil
		}
	}
	tests := []struct {
		name, data, wantErr string
	}{
		{"ok", `{"a":"x","n":3,"r":{"any":[1]}}`, ""},
		{"empty", `{}`, ""},
		{"unknown key", `{"b":1}`, "b: unknown key"},
		{"case-sensitive", `{"A":"x"}`, "A: unknown key"},
		{"duplicate", `{"a":"x","a":"y"}`, "a: duplicate key"},
		{"trailing data", `{"a":"x"} {}`, "after the JSON object"},
		{"trailing garbage", `{"a":"x"}x`, "after the JSON object"},
		{"null object", `null`, "expected a JSON object, got null"},
		{"array", `[]`, "expected a JSON object"},
		{"wrong type", `{"a":1}`, "a: expected string"},
		{"fraction", `{"n":1.5}`, "n: expected int64"},
		{"null string", `{"a":null}`, "a: null is not allowed"},
		{"odd key quoted in path", `{"a b":1}`, `["a b"]: unknown key`},
		{"truncated", `{"a":"x"`, "invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d dst
			_, err := DecodeObject([]byte(tt.data), fields(&d))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestDecodeExactMissingKey(t *testing.T) {
	var a, b string
	err := DecodeExact([]byte(`{"a":"x"}`), map[string]any{"a": &a, "b": &b})
	if err == nil || !strings.Contains(err.Error(), `missing required key "b"`) {
		t.Fatalf("error = %v", err)
	}
}

func TestPaths(t *testing.T) {
	err := WithPath(Key("transports"), WithPath(Key("docker"), WithPath(Key("quay.io"), WithPath(Index(0), WithPath(Key("keyPaths"), errors.New("bad"))))))
	if got, want := err.Error(), `transports.docker["quay.io"][0].keyPaths: bad`; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Path != `transports.docker["quay.io"][0].keyPaths` {
		t.Fatalf("path = %+v", e)
	}
}

func TestDecodeArray(t *testing.T) {
	var got []string
	err := DecodeArray(json.RawMessage(`["a","b"]`), func(i int, raw json.RawMessage) error {
		var s string
		if err := Unmarshal(raw, &s); err != nil {
			return err
		}
		got = append(got, s)
		return nil
	})
	if err != nil || strings.Join(got, ",") != "a,b" {
		t.Fatalf("got %v, %v", got, err)
	}
	err = DecodeArray(json.RawMessage(`["a",1]`), func(i int, raw json.RawMessage) error {
		var s string
		return Unmarshal(raw, &s)
	})
	if err == nil || !strings.HasPrefix(err.Error(), "[1]: ") {
		t.Fatalf("error = %v", err)
	}
	if err := DecodeArray(json.RawMessage(`null`), nil); err == nil {
		t.Fatal("null accepted as an array")
	}
}

func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":"x","a":"y"}`, `{"a":1}`, `null`, `{"a":"x"}x`, `{"n":1e400}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var a string
		var n int64
		keys, err := DecodeObject(data, func(key string) any {
			switch key {
			case "a":
				return &a
			case "n":
				return &n
			}
			return nil
		})
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if seen[k] || (k != "a" && k != "n") {
				t.Fatalf("accepted keys %v", keys)
			}
			seen[k] = true
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
	})
}
