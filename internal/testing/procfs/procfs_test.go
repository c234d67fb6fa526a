package procfs

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A command name may hold spaces and parentheses.
	st, err := parseStat("4242 (tor (x) y) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 1 0 99 0 0\n")
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{PID: 4242, Comm: "tor (x) y", State: 'S', PPID: 17, PGRP: 4242, UTime: 250, STime: 31}
	if st != want {
		t.Fatalf("got %+v, want %+v", st, want)
	}
	if st.CPUSeconds() != 2.81 {
		t.Errorf("CPUSeconds %v, want 2.81", st.CPUSeconds())
	}
	for _, bad := range []string{"", "12 tor S 1 2", "12 (tor) S 1", "x (tor) S 1 2 3 4 5 6 7 8 9 10 11 12"} {
		if _, err := parseStat(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// A child this test starts is found in the table with its parent and
// state, and is gone once reaped.
func TestAllFindsChild(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	found := func() (Stat, bool) {
		for _, st := range All() {
			if st.PID == cmd.Process.Pid {
				return st, true
			}
		}
		return Stat{}, false
	}
	st, ok := found()
	if !ok || st.PPID != os.Getpid() || st.Comm != "sleep" || st.State == 'Z' {
		t.Fatalf("child %d: %+v, listed %v", cmd.Process.Pid, st, ok)
	}
	cmd.Process.Kill()
	cmd.Wait()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, ok := found(); !ok {
			return
		}
	}
	t.Fatal("a reaped child is still listed")
}
