// Package bidi drives a real Firefox ESR for onionchat's tests over
// WebDriver BiDi, the protocol Firefox speaks natively: no geckodriver, no
// npm, and it never downloads a browser or anything else. It owns the
// browser process it starts (a fresh profile in a temporary directory, kept
// off the network, optionally with WebAssembly disabled as at Tor Browser's
// "Safer" level) and one BiDi session on it; Close ends both and kills the
// process by its PID if it lingers.
//
// A Browser hands out Tabs, each in its own user context (separate cookies
// and storage, like two different people). Pages are driven by evaluating
// JavaScript (Eval, WaitFor) or with trusted input events (Type, Click).
// Messages sent by preload scripts and console/JavaScript log entries are
// recorded for the test to inspect.
//
// It is test support: it holds no application logic. Every call is bounded
// by its context and, when that has no deadline, by Options.CallTimeout.
package bidi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Options configure Launch. The zero value is usable.
type Options struct {
	// DisableWasm turns WebAssembly off (javascript.options.wasm = false),
	// so that typeof WebAssembly === "undefined" in pages.
	DisableWasm bool
	// ExtraPrefs are written to the profile's user.js after (and over) the
	// package's own; values are bool, integers or strings.
	ExtraPrefs map[string]any
	// Logf, if set, receives the browser's output and its log entries;
	// t.Logf fits.
	Logf func(format string, args ...any)
	// Binary is the browser to run; empty means firefox-esr from $PATH.
	Binary string
	// StartTimeout bounds the wait for the browser's BiDi address; zero
	// means 30s. The context given to Launch bounds it too.
	StartTimeout time.Duration
	// CallTimeout bounds each command whose context has no deadline; zero
	// means 60s.
	CallTimeout time.Duration
}

// Browser is a running Firefox with one BiDi session.
type Browser struct {
	opts Options
	dir  string // temporary directory: profile, HOME, TMPDIR
	cmd  *exec.Cmd

	exited  chan struct{} // closed when the process has been waited for
	waitErr error         // set before exited is closed
	outDone chan struct{} // closed when the output reader has finished
	outR    *os.File

	c *conn // nil until connected

	closeOnce sync.Once
	closeErr  error
}

var listenRe = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)

// Launch starts a headless browser with a fresh profile, connects to its
// BiDi endpoint and creates a session that accepts self-signed
// certificates. On error nothing is left running.
func Launch(ctx context.Context, opts Options) (b *Browser, err error) {
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 60 * time.Second
	}
	bin := opts.Binary
	if bin == "" {
		if bin, err = exec.LookPath("firefox-esr"); err != nil {
			return nil, fmt.Errorf("bidi: launch: %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "onionchat-bidi-")
	if err != nil {
		return nil, fmt.Errorf("bidi: launch: %w", err)
	}
	profile, home, tmp := filepath.Join(dir, "profile"), filepath.Join(dir, "home"), filepath.Join(dir, "tmp")
	for _, d := range []string{profile, home, tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("bidi: launch: %w", err)
		}
	}
	if err := writeUserJS(profile, opts.DisableWasm, opts.ExtraPrefs); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("bidi: launch: %w", err)
	}

	// Output goes to a pipe we own rather than cmd's: content processes
	// inherit it, and we decide when to stop reading.
	outR, outW, err := os.Pipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("bidi: launch: %w", err)
	}
	cmd := exec.Command(bin, "--headless", "--no-remote", "--profile", profile, "--remote-debugging-port=0")
	cmd.Env = browserEnv(home, tmp)
	cmd.Stdout, cmd.Stderr = outW, outW
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		outR.Close()
		outW.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("bidi: launch: %w", err)
	}
	outW.Close()

	b = &Browser{
		opts: opts, dir: dir, cmd: cmd,
		exited: make(chan struct{}), outDone: make(chan struct{}), outR: outR,
	}
	go func() {
		b.waitErr = cmd.Wait()
		close(b.exited)
	}()
	urlc := make(chan string, 1)
	go b.readOutput(urlc)
	defer func() {
		if err != nil {
			b.Close()
			b = nil
		}
	}()

	sctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	var wsURL string
	select {
	case wsURL = <-urlc:
	case <-b.exited:
		return b, fmt.Errorf("bidi: launch: browser exited before listening: %v", b.waitErr)
	case <-sctx.Done():
		return b, fmt.Errorf("bidi: launch: waiting for the BiDi address: %w", sctx.Err())
	}

	// No Origin header: Firefox rejects WebSocket handshakes that carry one.
	ws, resp, err := websocket.DefaultDialer.DialContext(sctx, wsURL+"/session", nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return b, fmt.Errorf("bidi: launch: dial %s: %w", wsURL, err)
	}
	b.c = newConn(ws, opts.CallTimeout, b.logf)

	err = b.c.call(sctx, "session.new", map[string]any{
		"capabilities": map[string]any{"alwaysMatch": map[string]any{"acceptInsecureCerts": true}},
	}, nil)
	if err != nil {
		return b, fmt.Errorf("bidi: launch: new session: %w", err)
	}
	if err := b.Subscribe(sctx, "script.message", "log.entryAdded"); err != nil {
		return b, fmt.Errorf("bidi: launch: %w", err)
	}
	return b, nil
}

// browserEnv is the environment without anything that would point the
// browser at the user's own files, displays or sessions.
func browserEnv(home, tmp string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "HOME", k == "TMPDIR", k == "DISPLAY", k == "WAYLAND_DISPLAY",
			k == "DBUS_SESSION_BUS_ADDRESS", strings.HasPrefix(k, "XDG_"), strings.HasPrefix(k, "MOZ_"):
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"HOME="+home,
		"TMPDIR="+tmp,
		"MOZ_HEADLESS=1",
		"MOZ_CRASHREPORTER_DISABLE=1",
		"MOZ_DISABLE_AUTO_SAFE_MODE=1",
		"MOZ_REMOTE_SETTINGS_DEVTOOLS=1", // honour services.settings.server
		"MOZ_DISABLE_NONLOCAL_CONNECTIONS=1",
	)
}

// readOutput forwards the browser's output to Logf and sends the BiDi
// address once on urlc. It ends when every process holding the pipe has
// exited, or when Close closes the read end.
func (b *Browser) readOutput(urlc chan<- string) {
	defer close(b.outDone)
	sc := bufio.NewScanner(b.outR)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		if !sent {
			if m := listenRe.FindStringSubmatch(line); m != nil {
				urlc <- m[1]
				sent = true
			}
		}
		b.logf("firefox: %s", line)
	}
	if err := sc.Err(); err != nil && !errors.Is(err, os.ErrClosed) && !errors.Is(err, io.EOF) {
		b.logf("firefox: reading output: %v", err)
	}
}

func (b *Browser) logf(format string, args ...any) {
	if b.opts.Logf != nil {
		b.opts.Logf(format, args...)
	}
}

// PID is the browser's process ID (also its process group's).
func (b *Browser) PID() int { return b.cmd.Process.Pid }

// Close ends the session and closes the browser, then kills the process
// (and its group) by PID if it has not exited within a few seconds, and
// removes the profile. It is safe to call more than once; later calls
// return the first result.
func (b *Browser) Close() error {
	b.closeOnce.Do(func() { b.closeErr = b.close() })
	return b.closeErr
}

func (b *Browser) close() error {
	var errs []error
	if b.c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := b.c.call(ctx, "browser.close", map[string]any{}, nil)
		cancel()
		// The browser may drop the connection before or instead of
		// answering; only a refusal counts.
		var ce *CommandError
		if errors.As(err, &ce) {
			errs = append(errs, fmt.Errorf("bidi: close: %w", err))
		}
		select {
		case <-b.exited:
		case <-time.After(10 * time.Second):
			b.logf("bidi: browser %d still running after browser.close; killing it", b.PID())
		}
	}
	// Kill the group in any case: a content process may outlive the parent.
	killGroup(b.cmd.Process)
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		errs = append(errs, fmt.Errorf("bidi: close: browser %d did not exit after SIGKILL", b.PID()))
	}
	// Killed content processes linger until reaped by whoever adopted them.
	for deadline := time.Now().Add(10 * time.Second); !groupGone(b.PID()); {
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("bidi: close: processes of group %d remain after SIGKILL", b.PID()))
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b.c != nil {
		b.c.close()
	}
	select {
	case <-b.outDone:
	case <-time.After(2 * time.Second):
	}
	b.outR.Close()
	<-b.outDone
	if err := os.RemoveAll(b.dir); err != nil {
		errs = append(errs, fmt.Errorf("bidi: close: %w", err))
	}
	return errors.Join(errs...)
}
