package bidi

import (
	"syscall"

	"github.com/onionchat/onionchat/internal/testing/procfs"
)

// setParentDeathSignal makes the kernel kill the browser if the test
// process dies without calling Close.
func setParentDeathSignal(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGKILL }

// groupGone reports whether no live process of group pgid remains.
// Killed content processes are adopted and reaped by init, which may take
// its time; until then they are zombies, dead but listed, and do not count.
func groupGone(pgid int) bool { return len(liveInGroup(pgid)) == 0 }

// liveInGroup lists the processes of group pgid that are not zombies.
func liveInGroup(pgid int) []int {
	var live []int
	for _, st := range procfs.All() {
		if st.PGRP == pgid && st.State != 'Z' {
			live = append(live, st.PID)
		}
	}
	return live
}
