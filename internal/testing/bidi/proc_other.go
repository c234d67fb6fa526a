//go:build unix && !linux

package bidi

import (
	"errors"
	"syscall"
)

func setParentDeathSignal(*syscall.SysProcAttr) {}

// groupGone reports whether no process of group pgid remains.
func groupGone(pgid int) bool { return len(liveInGroup(pgid)) == 0 }

// liveInGroup returns []int{pgid} if any process of group pgid exists.
func liveInGroup(pgid int) []int {
	if errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) {
		return nil
	}
	return []int{pgid}
}
