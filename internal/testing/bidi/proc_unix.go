//go:build unix

package bidi

import (
	"os"
	"syscall"
)

// sysProcAttr puts the browser in a process group of its own, so that its
// content processes can be killed with it.
func sysProcAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true}
	setParentDeathSignal(attr)
	return attr
}

// killGroup sends SIGKILL to the process group p leads: the browser, if it
// still runs, and the content processes it started.
func killGroup(p *os.Process) {
	syscall.Kill(-p.Pid, syscall.SIGKILL)
}
