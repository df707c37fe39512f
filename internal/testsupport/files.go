package testsupport

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// ReadFile returns the contents of path, failing the test if it cannot be read.
func ReadFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// WriteFile writes content to path (mode 0600), failing the test if it cannot.
func WriteFile[T string | []byte](t testing.TB, path string, content T) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// JSON is v marshalled by encoding/json (map keys sorted: the canonical order for the
// bodies tests build), failing the test if it cannot be.
func JSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// WantErr checks the error of a table row: with want set, err must mention it; with want
// empty, err must be nil. It reports whether the row expects success, so that the caller
// goes on to check the result.
func WantErr(t testing.TB, err error, want string) bool {
	t.Helper()
	if want != "" {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v, want one mentioning %q", err, want)
		}
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}
