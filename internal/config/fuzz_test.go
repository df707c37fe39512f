package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pullgate/pullgate/internal/testsupport"
)

// FuzzLoadConfig feeds arbitrary files to the configuration loader: it must never panic,
// must fail only with errors that say what is wrong, and must never accept a configuration
// that validation would refuse.
func FuzzLoadConfig(f *testing.F) {
	example, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		testsupport.GoodConfig,
		string(example),
		"",
		"listen: [1]\nlisen: x\nupstreams:\n  - registry: docker.io\n    url: ftp://x\n    usr: me\n",
		"upstreams:\n  docker.io: x\n",
		"a: &a [*a]\n",
		"base: &b\n  registry: docker.io\nupstreams:\n  - <<: *b\n",
		"upstreams:\n  - registry: docker.io\n    url: https://u:p@r.example\n    password: [x]\npolicy:\n  path: policy.json\n",
		"cache:\n  verdicts:\n    size: '12'\n    acceptTTL: 1h\n    denyTTL: 60\n",
		"---\n---\n",
		"listen: :5000\nListen: :6000\n",
	} {
		f.Add([]byte(seed))
	}
	dir := testDirForFuzz(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "config.yaml")
		testsupport.WriteFile(t, path, data)
		// Relative paths resolve next to the file; give them the shared test files.
		for _, name := range []string{"policy.json", "registries.d"} {
			if err := os.Symlink(filepath.Join(dir, name), filepath.Join(filepath.Dir(path), name)); err != nil {
				t.Fatal(err)
			}
		}
		cfg, _, err := Load(path)
		if err != nil {
			var ce *Error
			if errors.As(err, &ce) && len(ce.Problems) == 0 {
				t.Fatalf("Error without problems")
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if ps := cfg.validate(); len(ps) > 0 {
			t.Fatalf("accepted a configuration with problems: %v", ps)
		}
		if len(cfg.Upstreams) == 0 || cfg.Policy.Path == "" {
			t.Fatalf("accepted a configuration without upstreams or policy: %+v", cfg)
		}
		if !filepath.IsAbs(cfg.Policy.Path) {
			t.Fatalf("policy.path %q not resolved", cfg.Policy.Path)
		}
	})
}

func testDirForFuzz(f *testing.F) string {
	dir := f.TempDir()
	testsupport.WriteFile(f, filepath.Join(dir, "policy.json"), []byte("{}"))
	if err := os.Mkdir(filepath.Join(dir, "registries.d"), 0o700); err != nil {
		f.Fatal(err)
	}
	return dir
}
