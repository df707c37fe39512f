package harness

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// PID is the pullgate process's id, for reading its resource use from /proc.
func (p *Pullgate) PID() int { return p.cmd.Process.Pid }

// VmHWM is the peak resident set size of process pid in bytes, from /proc/<pid>/status:
// a measurement of memory use (not a timing).
func VmHWM(t testing.TB, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("harness: VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("harness: no VmHWM in /proc/%d/status", pid)
	return 0
}
