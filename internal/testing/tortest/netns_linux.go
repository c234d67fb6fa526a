//go:build linux

package tortest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// MainInNetns runs a test binary's tests in a network namespace of their
// own, for a package's TestMain:
//
//	func TestMain(m *testing.M) { tortest.MainInNetns(m) }
//
// The first call re-executes the test binary, with the same arguments
// (-test.* flags included), standard streams and environment plus
// TORTEST_NETNS=1, in a new user and network namespace (as "unshare -rn"
// does; the user namespace maps the caller's uid and gid to root, and, if
// the caller is root, every uid and gid below 65536 to itself, so that a
// test can run a program as another user), and
// exits with its exit status (128+N if signal N killed it). Signals the
// parent receives (SIGINT, SIGTERM, SIGQUIT, SIGHUP) are passed on, and
// the child is killed if the parent dies. In the child, MainInNetns brings
// up the loopback interface, checks that no other interface exists, and
// runs the tests: everything they start (tor, the application, browsers)
// inherits the namespace and can reach 127.0.0.1 and nothing else.
//
// Where namespaces cannot be made (no user namespaces, a seccomp filter),
// it says so on stderr and runs the tests directly; Isolated tells them
// apart.
func MainInNetns(m *testing.M) {
	if Isolated() {
		if err := enterNetns(); err != nil {
			fmt.Fprintf(os.Stderr, "tortest: in the network namespace: %v\n", err)
			os.Exit(2)
		}
		os.Exit(m.Run())
	}
	code, err := runInNetns()
	if err != nil {
		fmt.Fprintf(os.Stderr, "tortest: network namespace not available (%v); running the tests without isolation\n", err)
		os.Exit(m.Run())
	}
	os.Exit(code)
}

// idRange is how many uids and gids, from 0, a root caller maps into the
// namespace as themselves: every ordinary one (systemd's dynamic users
// end at 65519).
const idRange = 65536

// runInNetns re-executes the test binary in new user and network
// namespaces and returns its exit status; an error if it could not be
// started there.
func runInNetns() (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	// Pdeathsig is sent when the thread that started the child exits: keep
	// this goroutine on its thread until the process exits.
	runtime.LockOSThread()
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), EnvNetns+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		GidMappingsEnableSetgroups: false,
		Pdeathsig:                  syscall.SIGKILL,
	}
	if os.Getuid() == 0 {
		// Root may map every ordinary uid and gid as itself, so that tests
		// can run a program as another user (a service's, say) and see
		// real owners.
		cmd.SysProcAttr.UidMappings[0].Size = idRange
		cmd.SysProcAttr.GidMappings[0].Size = idRange
		cmd.SysProcAttr.GidMappingsEnableSetgroups = true
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGHUP)
	if err := cmd.Start(); err != nil {
		signal.Stop(sigs)
		return 0, err
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	signal.Stop(sigs)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			fmt.Fprintf(os.Stderr, "tortest: test binary in the network namespace killed by %v\n", ws.Signal())
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	default:
		fmt.Fprintf(os.Stderr, "tortest: test binary in the network namespace: %v\n", err)
		return 2, nil
	}
}

// enterNetns brings up the namespace's loopback interface and refuses a
// namespace with any other interface (so not a fresh one).
func enterNetns() error {
	if err := loopbackUp(); err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return err
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 {
			return fmt.Errorf("interface %s besides loopback: not an isolated namespace", i.Name)
		}
	}
	return nil
}

// loopbackUp sets IFF_UP on "lo", as "ip link set lo up" does.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
