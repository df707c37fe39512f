package harness

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// PID is the process id of the pullgate process.
func (p *Pullgate) PID() int { return p.cmd.Process.Pid }

// VmHWM is the peak resident set size of the pullgate process so far, in bytes, read from
// /proc/<pid>/status: what resource tests compare against a bound.
func (p *Pullgate) VmHWM(t testing.TB) int64 {
	t.Helper()
	return procStatusBytes(t, p.PID(), "VmHWM")
}

// VmRSS is the current resident set size of the pullgate process, in bytes.
func (p *Pullgate) VmRSS(t testing.TB) int64 {
	t.Helper()
	return procStatusBytes(t, p.PID(), "VmRSS")
}

// procStatusBytes reads one "<field>: <n> kB" line of /proc/<pid>/status.
func procStatusBytes(t testing.TB, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), field+":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			t.Fatalf("harness: /proc/%d/status %s: %v", pid, field, err)
		}
		return kb << 10
	}
	t.Fatalf("harness: /proc/%d/status has no %s", pid, field)
	return 0
}
