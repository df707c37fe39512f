package harness

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/pullgate/pullgate/internal/testsupport"
)

// LogBuffer collects a component's log output; safe for concurrent use.
type LogBuffer = testsupport.LogBuffer

// newLogger returns a debug-level text logger writing to a new buffer, whose content
// is shown (last maxLogLines lines) if the test fails.
func newLogger(t testing.TB, what string) (*slog.Logger, *LogBuffer) {
	buf := &LogBuffer{}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
		if len(lines) > maxLogLines {
			lines = lines[len(lines)-maxLogLines:]
		}
		t.Logf("%s log (last %d lines):\n%s", what, len(lines), strings.Join(lines, "\n"))
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// maxLogLines is how much of a log a failing test shows.
const maxLogLines = 60
