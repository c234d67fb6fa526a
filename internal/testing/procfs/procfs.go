// Package procfs reads the process table from Linux's /proc: the one
// parser of /proc/PID/stat, for the test support (finding a browser's
// processes, onionchat's tor child) and the benchmark (a server's CPU
// time). Elsewhere than Linux every read fails. The appliance itself
// never reads /proc, so this lives with the tools that watch it.
package procfs

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ClockTicks is USER_HZ, the unit of /proc/PID/stat times; it is 100 on
// every Linux that Go runs on.
const ClockTicks = 100

// Stat holds the fields of /proc/PID/stat that onionchat's tools use.
type Stat struct {
	PID   int
	Comm  string // the command name, at most 15 bytes
	State byte   // 'R' running, 'S' sleeping, 'Z' zombie (dead, not yet reaped), …
	PPID  int    // parent
	PGRP  int    // process group
	// UTime and STime are the CPU time spent in user and kernel mode, in
	// ClockTicks.
	UTime, STime int64
}

// CPUSeconds returns the CPU time the process has used, user and system.
func (s Stat) CPUSeconds() float64 { return float64(s.UTime+s.STime) / ClockTicks }

// ReadStat reads /proc/PID/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	return parseStat(string(b))
}

// parseStat reads "pid (comm) state ppid pgrp session tty tpgid flags
// minflt cminflt majflt cmajflt utime stime …". comm may hold anything,
// spaces and parentheses too, but ends at the last ')'.
func parseStat(s string) (Stat, error) {
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return Stat{}, errors.New("procfs: stat without (comm)")
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 13 || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("procfs: stat has %d fields after (comm)", len(f))
	}
	st := Stat{Comm: s[open+1 : end], State: f[0][0]}
	var errs [5]error
	st.PID, errs[0] = strconv.Atoi(strings.TrimSpace(s[:open]))
	st.PPID, errs[1] = strconv.Atoi(f[1])
	st.PGRP, errs[2] = strconv.Atoi(f[2])
	st.UTime, errs[3] = strconv.ParseInt(f[11], 10, 64)
	st.STime, errs[4] = strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(errs[:]...); err != nil {
		return Stat{}, fmt.Errorf("procfs: stat: %w", err)
	}
	return st, nil
}

// All returns every process listed in /proc, leaving out those that exit
// while it reads; nil if /proc cannot be read.
func All() []Stat {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var all []Stat
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := ReadStat(pid); err == nil {
			all = append(all, st)
		}
	}
	return all
}
