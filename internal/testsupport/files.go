package testsupport

import (
	"encoding/json"
	"os"
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
