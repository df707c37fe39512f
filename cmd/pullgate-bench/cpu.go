package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicksPerSecond is USER_HZ, the unit of utime and stime in /proc/<pid>/stat. It is
// 100 on every Linux architecture Go supports (sysconf(_SC_CLK_TCK) would need cgo).
const clockTicksPerSecond = 100

// cpuTimes is the CPU time (user + system) used so far by the three parties of a
// transfer.
type cpuTimes struct {
	registry, pullgate, client time.Duration
}

func (a cpuTimes) sub(b cpuTimes) cpuTimes {
	return cpuTimes{registry: a.registry - b.registry, pullgate: a.pullgate - b.pullgate, client: a.client - b.client}
}

func (a cpuTimes) add(b cpuTimes) cpuTimes {
	return cpuTimes{registry: a.registry + b.registry, pullgate: a.pullgate + b.pullgate, client: a.client + b.client}
}

// cpuMeter reads the CPU time of the registry and pullgate processes and of this one.
// On a system without /proc it reads zeros, and the report shows no CPU figures.
type cpuMeter struct {
	registryPID, pullgatePID int
}

func (m cpuMeter) read() cpuTimes {
	reg, _ := processCPU(m.registryPID)
	pg, _ := processCPU(m.pullgatePID)
	return cpuTimes{registry: reg, pullgate: pg, client: selfCPU()}
}

// processCPU reads utime + stime of pid (all its threads, live and exited) from
// /proc/<pid>/stat. Resolution: one clock tick (10 ms).
func processCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: count fields
	// after its closing parenthesis. utime and stime are fields 14 and 15.
	s := string(data)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[end+1:])
	const utime = 14 - 3 // f[0] is field 3
	if len(f) <= utime+1 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	var ticks int64
	for _, v := range f[utime : utime+2] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicksPerSecond, nil
}
