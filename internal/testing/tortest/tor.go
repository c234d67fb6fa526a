package tortest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StopTimeout bounds how long a stopped tor may take to exit after SIGTERM
// before it is sent SIGKILL, and then how long it may take to go. A tor
// exits within a fraction of a second of SIGTERM, except that tor 0.4.9
// sometimes deadlocks on the way out (main thread waiting on a futex after
// "Catching signal TERM, exiting cleanly"), seen about once in ten networks
// in authorities stopped just as they publish a consensus.
var StopTimeout = 5 * time.Second

// Tor is one running tor process of a private network: an authority, a
// relay, the client, or an extra tor from Network.StartTor. Its files live
// in Dir: torrc, notice.log, stdout.log and the DataDirectory "data".
// Methods are safe for concurrent use.
type Tor struct {
	name string
	dir  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and been reaped

	stopOnce sync.Once
	stopErr  error

	mu         sync.Mutex // guards ctrl, socks and lastNewNym
	ctrl       *control
	socks      string
	lastNewNym time.Time
}

// launch is the only way this package starts tor. It refuses, before
// creating any file or process, a torrc that checkTorrc refuses (own is the
// private network's DirAuthority lines); otherwise it writes lines to
// dir/torrc, starts torPath on it with an empty defaults file and nothing
// else on the command line (so the checked lines are the whole
// configuration), and returns the running process. The caller must Stop it.
func launch(torPath, name, dir string, lines, own []string) (*Tor, error) {
	if err := checkTorrc(lines, own); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	torrc := filepath.Join(dir, "torrc")
	if err := os.WriteFile(torrc, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	defaults := filepath.Join(dir, "torrc-defaults")
	if err := os.WriteFile(defaults, nil, 0o600); err != nil {
		return nil, err
	}
	out, err := os.OpenFile(filepath.Join(dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(torPath, "-f", torrc, "--defaults-torrc", defaults)
	cmd.Dir = dir
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	tor := &Tor{name: name, dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(tor.done)
	}()
	return tor, nil
}

// Name is the tor's name in this network ("auth0", "relay1", "client",
// "tor1", ...), also the last element of Dir.
func (tor *Tor) Name() string { return tor.name }

// Dir is the tor's directory: torrc, notice.log, stdout.log, and the
// DataDirectory "data". Tests may put their own files (a HiddenServiceDir)
// under it.
func (tor *Tor) Dir() string { return tor.dir }

// DataDir is the tor's DataDirectory.
func (tor *Tor) DataDir() string { return filepath.Join(tor.dir, "data") }

// PID is the tor's process id.
func (tor *Tor) PID() int { return tor.cmd.Process.Pid }

// Exited reports whether the process has exited.
func (tor *Tor) Exited() bool {
	select {
	case <-tor.done:
		return true
	default:
		return false
	}
}

// ErrKilled is wrapped by Stop's error when the tor had to be killed. The
// process is gone then, so the cleanups of this package only log it.
var ErrKilled = errors.New("killed with SIGKILL")

// Stop stops the tor by its own PID: SIGTERM, then SIGKILL if it has not
// exited within StopTimeout, and waits (bounded) until it is reaped. It
// returns an error wrapping ErrKilled if SIGKILL was needed, another error
// if even that did not end the process within StopTimeout, and nil
// otherwise (a tor that had already exited included). It is idempotent and
// returns the same result every time.
func (tor *Tor) Stop() error {
	tor.stopOnce.Do(func() {
		tor.stopErr = tor.stop()
		tor.mu.Lock()
		if tor.ctrl != nil {
			tor.ctrl.close()
			tor.ctrl = nil
		}
		tor.mu.Unlock()
	})
	return tor.stopErr
}

func (tor *Tor) stop() error {
	if tor.Exited() {
		return nil
	}
	_ = tor.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-tor.done:
		return nil
	case <-time.After(StopTimeout):
	}
	_ = tor.cmd.Process.Kill()
	select {
	case <-tor.done:
		return fmt.Errorf("tortest: %s (pid %d) had not exited %v after SIGTERM: %w\n%s", tor.name, tor.PID(), StopTimeout, ErrKilled, tor.LogTail(10))
	case <-time.After(StopTimeout):
		return fmt.Errorf("tortest: %s (pid %d) did not exit after SIGKILL\n%s", tor.name, tor.PID(), tor.LogTail(10))
	}
}

// LogTail returns the last n lines of the tor's notice log and, if it
// wrote any, of its stdout and stderr (where it reports torrc errors).
func (tor *Tor) LogTail(n int) string {
	var b strings.Builder
	for _, f := range []string{"notice.log", "stdout.log"} {
		data, err := os.ReadFile(filepath.Join(tor.dir, f))
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "--- %s %s (last %d lines)\n%s\n", tor.name, f, len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}

// errExited is returned by waits on a tor that has exited.
var errExited = errors.New("tor exited")

// waitFor polls cond every 100 ms until it reports true, the tor exits,
// or timeout passes; the error then names what was awaited and the last
// error cond returned.
func (tor *Tor) waitFor(what string, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if tor.Exited() {
			return fmt.Errorf("%s: waiting for %s: %w (%s)", tor.name, what, errExited, tor.cmd.ProcessState)
		}
		if time.Now().After(deadline) {
			if last != nil {
				return fmt.Errorf("%s: no %s after %v (last error: %v)", tor.name, what, timeout, last)
			}
			return fmt.Errorf("%s: no %s after %v", tor.name, what, timeout)
		}
		select {
		case <-tor.done:
		case <-time.After(pollInterval):
		}
	}
}

const pollInterval = 100 * time.Millisecond

// controlLocked returns the tor's control connection, connecting and
// authenticating on first use. tor writes the control port file and the
// cookie file as it starts, one after the other, so it retries for up to
// controlTimeout. Callers hold tor.mu.
func (tor *Tor) controlLocked() (*control, error) {
	if tor.ctrl != nil {
		return tor.ctrl, nil
	}
	portFile := filepath.Join(tor.dir, "control.port")
	cookieFile := filepath.Join(tor.DataDir(), "control_auth_cookie")
	err := tor.waitFor("control connection", controlTimeout, func() (bool, error) {
		b, err := os.ReadFile(portFile)
		if err != nil {
			return false, err
		}
		addr, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "PORT=")
		if !ok || addr == "" {
			return false, fmt.Errorf("control port file %q", b)
		}
		c, err := dialControl(addr, cookieFile)
		if err != nil {
			return false, err
		}
		tor.ctrl = c
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return tor.ctrl, nil
}

// control is Control with errors not prefixed by the package name.
func (tor *Tor) control(cmd string) ([]string, error) {
	tor.mu.Lock()
	defer tor.mu.Unlock()
	c, err := tor.controlLocked()
	if err != nil {
		return nil, err
	}
	lines, err := c.do(cmd)
	if err != nil {
		c.close()
		tor.ctrl = nil
		return nil, fmt.Errorf("%s: %w", tor.name, err)
	}
	return lines, nil
}

// Control sends one command line to the tor's control port (authenticated
// with the cookie; the connection is opened on first use and closed by
// Stop) and returns the reply lines, without their status prefix. A reply
// other than 250 is an error. Each command is bounded by 15 s.
func (tor *Tor) Control(cmd string) ([]string, error) {
	lines, err := tor.control(cmd)
	if err != nil {
		return nil, fmt.Errorf("tortest: %w", err)
	}
	return lines, nil
}

// getInfo is GetInfo with errors not prefixed by the package name.
func (tor *Tor) getInfo(key string) (string, error) {
	lines, err := tor.control("GETINFO " + key)
	if err != nil {
		return "", err
	}
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return strings.TrimPrefix(v, "\n"), nil
		}
	}
	return "", fmt.Errorf("%s: GETINFO %s: no value in %q", tor.name, key, lines)
}

// GetInfo returns the value of one GETINFO key (a multi-line value
// without its leading line break).
func (tor *Tor) GetInfo(key string) (string, error) {
	v, err := tor.getInfo(key)
	if err != nil {
		return "", fmt.Errorf("tortest: %w", err)
	}
	return v, nil
}

// NewNym sends SIGNAL NEWNYM: new circuits for new streams, and the
// client's onion-service state (descriptors, failed intro points, which
// HSDirs were asked) forgotten. tor acts on at most one NEWNYM per 10 s and
// delays the others.
func (tor *Tor) NewNym() error {
	tor.mu.Lock()
	tor.lastNewNym = time.Now()
	tor.mu.Unlock()
	_, err := tor.Control("SIGNAL NEWNYM")
	return err
}

// HTTPClient returns a new *http.Client whose requests go through the
// tor's SOCKS port (host names, .onion ones included, are resolved by
// tor), each bounded by RequestTimeout. Keep-alives are off, so no
// connection or goroutine outlives a request. TLS settings are Go's
// defaults; set the Transport's TLSClientConfig for self-signed servers.
func (tor *Tor) HTTPClient() *http.Client {
	return &http.Client{
		Timeout: RequestTimeout,
		Transport: &http.Transport{
			Proxy:             http.ProxyURL(&url.URL{Scheme: "socks5", Host: tor.SOCKSAddr()}),
			DisableKeepAlives: true,
		},
	}
}

// Get fetches rawURL with a GET through the tor's SOCKS port and returns
// the first HTTP response's status and body, whatever the status. It
// retries, until timeout, requests that get no response: an onion service
// that has just started is often not found for a while (SOCKS error 0xF0:
// its descriptor is not yet on the HSDirs asked) or not reachable (intro
// or rendezvous failure). Between attempts it waits a second, and sends
// NEWNYM if the last one was at least 10 s ago so that tor forgets failed
// intro points. The error, on timeout, gives the number of attempts and
// the last failure.
func (tor *Tor) Get(rawURL string, timeout time.Duration) (status int, body []byte, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := tor.HTTPClient()
	defer c.CloseIdleConnections()
	var last error // the last failure before the deadline cut one short
	for attempt := 1; ; attempt++ {
		status, body, err = get(ctx, c, rawURL)
		if err == nil {
			return status, body, nil
		}
		if last == nil || ctx.Err() == nil {
			last = err
		}
		tor.mu.Lock()
		due := time.Since(tor.lastNewNym) >= 10*time.Second
		tor.mu.Unlock()
		if due {
			_ = tor.NewNym() // a failure shows in the next attempt
		}
		select {
		case <-ctx.Done():
			return 0, nil, fmt.Errorf("tortest: %s: GET %s: no response after %d attempts in %v: %w", tor.name, rawURL, attempt, timeout, last)
		case <-time.After(time.Second):
		}
	}
}

func get(ctx context.Context, c *http.Client, rawURL string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// WaitBootstrapped waits, up to timeout, until the tor reports
// "Bootstrapped 100%" (GETINFO status/bootstrap-phase). It fails at once
// if the tor exits.
func (tor *Tor) WaitBootstrapped(timeout time.Duration) error {
	if err := tor.waitBootstrapped(timeout); err != nil {
		return fmt.Errorf("tortest: %w", err)
	}
	return nil
}

func (tor *Tor) waitBootstrapped(timeout time.Duration) error {
	return tor.waitFor("bootstrap to 100%", timeout, func() (bool, error) {
		v, err := tor.getInfo("status/bootstrap-phase")
		if err != nil {
			return false, err
		}
		return strings.Contains(v, " PROGRESS=100 "), fmt.Errorf("bootstrap phase: %s", v)
	})
}

// SOCKSAddr returns the address of the tor's SOCKS listener
// ("127.0.0.1:PORT"), asked once over the control port; "" if the tor has
// none or the control port does not answer.
func (tor *Tor) SOCKSAddr() string {
	tor.mu.Lock()
	s := tor.socks
	tor.mu.Unlock()
	if s != "" {
		return s
	}
	v, err := tor.getInfo("net/listeners/socks")
	if err != nil {
		return ""
	}
	f := strings.Fields(v)
	if len(f) == 0 {
		return ""
	}
	s, err = strconv.Unquote(f[0])
	if err != nil {
		s = f[0]
	}
	tor.mu.Lock()
	tor.socks = s
	tor.mu.Unlock()
	return s
}

// WaitFile waits, up to timeout, until path exists and is not empty (tor
// writes files such as an onion service's hostname whole), and returns its
// contents without surrounding white space. It fails at once if the tor
// exits.
func (tor *Tor) WaitFile(path string, timeout time.Duration) (string, error) {
	var s string
	err := tor.waitFor(path, timeout, func() (bool, error) {
		b, err := os.ReadFile(path)
		s = strings.TrimSpace(string(b))
		return err == nil && s != "", nil
	})
	if err != nil {
		return "", fmt.Errorf("tortest: %w", err)
	}
	return s, nil
}
