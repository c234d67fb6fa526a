// Package e2e starts the real onionchat binary for end-to-end tests and
// holds those tests: WebSocket clients over real TLS, real browsers, real
// tor on a private network. Every process a test starts is stopped by its
// own PID when the test ends, and every wait is bounded.
package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/onionchat/onionchat/internal/testing/procfs"
)

// StartTimeout bounds how long a started binary may take to print its
// address.
var StartTimeout = 30 * time.Second

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/onionchat once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "onionchat-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "onionchat")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/onionchat/onionchat/cmd/onionchat")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Proc is a running onionchat.
type Proc struct {
	Cmd         *exec.Cmd
	URL         string // first "Serving" URL printed
	Fingerprint string

	mu      sync.Mutex
	out     strings.Builder // stdout and stderr, interleaved
	done    chan struct{}
	waitErr error
}

var servingRe = regexp.MustCompile(`Serving (https?://\S+?)/?$`)
var fpRe = regexp.MustCompile(`fingerprint: ([0-9A-F:]{95})`)

// Start runs the binary with args and waits until it prints the URL it
// serves (the line the owner reads). The process is killed by PID when the
// test ends if it still runs.
func Start(t testing.TB, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	return StartCmd(t, cmd)
}

// StartCmd is Start for a command the caller has set up (another user's
// credentials, say); it must run the binary and have no stdout or stderr.
func StartCmd(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	stdout, _ := p.Cmd.StdoutPipe()
	p.Cmd.Stderr = &lockedWriter{p}
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start onionchat: %v", err)
	}
	t.Cleanup(func() { p.Kill() })
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.out.WriteString(line + "\n")
			if m := fpRe.FindStringSubmatch(line); m != nil {
				p.Fingerprint = m[1]
			}
			p.mu.Unlock()
			if m := servingRe.FindStringSubmatch(line); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stdout)
		p.waitErr = p.Cmd.Wait()
		close(p.done)
	}()
	select {
	case u := <-urls:
		p.URL = u
	case <-p.done:
		t.Fatalf("onionchat exited before serving: %v\n%s", p.waitErr, p.Output())
	case <-time.After(StartTimeout):
		t.Fatalf("onionchat printed no address within %v:\n%s", StartTimeout, p.Output())
	}
	// The fingerprint line follows the URL.
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline) && p.fp() == "" && strings.HasPrefix(p.URL, "https"); time.Sleep(10 * time.Millisecond) {
	}
	return p
}

func (p *Proc) fp() string { p.mu.Lock(); defer p.mu.Unlock(); return p.Fingerprint }

type lockedWriter struct{ p *Proc }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

// Output returns what the process printed so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Signal sends sig to the process (by its PID).
func (p *Proc) Signal(sig syscall.Signal) error { return syscall.Kill(p.Cmd.Process.Pid, sig) }

// Wait waits up to d for the process to exit and returns its exit code, or
// fails the test.
func (p *Proc) Wait(t testing.TB, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.Cmd.ProcessState.ExitCode()
	case <-time.After(d):
		t.Fatalf("onionchat still running after %v:\n%s", d, p.Output())
		return -1
	}
}

// Kill stops the process by PID if it still runs and waits for it, and
// kills its children (onion mode's tor) by theirs: tor exits when
// onionchat's control connection closes (TestTorGoesWithOnionchat), but a
// test must not depend on what it tests to clean up.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	pid := p.Cmd.Process.Pid
	var children []int
	for _, st := range procfs.All() {
		if st.PPID == pid {
			children = append(children, st.PID)
		}
	}
	syscall.Kill(pid, syscall.SIGKILL)
	for _, c := range children {
		syscall.Kill(c, syscall.SIGKILL)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// hostPort returns the host:port of a URL such as https://127.0.0.1:8443/.
func hostPort(u string) string {
	u = strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	return strings.TrimSuffix(u, "/")
}
