package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/onionchat/onionchat/internal/testing/need"
	"github.com/onionchat/onionchat/internal/testing/tortest"
	"github.com/onionchat/onionchat/internal/testing/wstest"
	"github.com/onionchat/onionchat/onion"
)

// backend is one real onionchat in onion mode behind an Onionbalance
// front, linked to the others over NATS on 127.0.0.1.
type backend struct {
	p    *Proc
	addr string // its own onion address, for the front's config
}

var backendAddrRe = regexp.MustCompile(`This backend's own address[^:]*: (\S+\.onion)`)

func startBackend(t *testing.T, n *tortest.Network, front string, route int, peers []string) *backend {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "mode = \"onion\"\n[tor]\nruntime_dir = %q\npublish_timeout = \"2m\"\nextra_torrc = [\n", shortDir(t))
	for _, l := range n.TorrcLines() {
		fmt.Fprintf(&b, "  %q,\n", l)
	}
	fmt.Fprintf(&b, "]\n[cluster]\nfront = %q\nlisten = \"127.0.0.1:%d\"\npeers = [", front, route)
	for i, p := range peers {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", p)
	}
	pw := filepath.Join(t.TempDir(), "links.password")
	if err := os.WriteFile(pw, []byte("backends' links\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "]\nuser = \"oc\"\npassword_file = %q\n", pw)
	cfg := filepath.Join(t.TempDir(), "backend.toml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startOnion(t, "--config", cfg, "--data-dir", filepath.Join(t.TempDir(), "data"))
	if p.URL != "http://"+front {
		t.Fatalf("a backend serves %s, want the front http://%s:\n%s", p.URL, front, p.Output())
	}
	m := backendAddrRe.FindStringSubmatch(p.Output())
	if m == nil || m[1] == front {
		t.Fatalf("no backend address printed:\n%s", p.Output())
	}
	return &backend{p: p, addr: m[1]}
}

// TestOnionbalanceFront: Onionbalance 0.2.2 publishes one address in
// front of two onionchat backends sharing rooms over NATS. Two members
// reach the front address over circuits of their own and chat; the
// backend that holds a member is stopped; the member reconnects through
// the same address, lands on the other backend, and chats again. The
// time from the stop to the message is logged (a figure, not a gate).
func TestOnionbalanceFront(t *testing.T) {
	obPath := need.Tool(t, "onionbalance")
	start := time.Now()
	n := tortest.StartWith(t, tortest.Options{VotingInterval: 20})

	// The front's key is a key onionchat already makes: an owner's
	// existing address becomes the front, and friends keep it.
	frontData := filepath.Join(t.TempDir(), "front")
	frontDir, front, err := onion.EnsureKey(frontData)
	if err != nil {
		t.Fatal(err)
	}
	ports, err := tortest.FreePorts(2)
	must(t, err)
	route := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	var backends [2]*backend
	for i := range 2 {
		backends[i] = startBackend(t, n, front, ports[i], []string{route(1 - i)})
	}
	t.Logf("network and two backends published in %v", time.Since(start).Round(time.Second))

	cfg, addr, err := onion.FrontConfig(filepath.Join(frontDir, onion.SecretKeyFile), []string{backends[0].addr, backends[1].addr})
	if err != nil || addr != front {
		t.Fatalf("front config for %s: %v", addr, err)
	}
	obDir := t.TempDir()
	cfgPath := filepath.Join(obDir, "config.yaml")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	obTor := n.StartTor(t)
	if err := obTor.WaitBootstrapped(time.Minute); err != nil {
		t.Fatal(err)
	}
	ctlPort := controlPort(t, obTor)
	logPath := filepath.Join(obDir, "onionbalance.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	ob := exec.Command(obPath, "--is-testnet", "-i", "127.0.0.1", "-p", ctlPort, "-c", cfgPath, "-v", "info")
	ob.Stdout, ob.Stderr, ob.Dir = logf, logf, obDir
	if err := ob.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	obDone := make(chan struct{})
	go func() { ob.Wait(); close(obDone) }()
	t.Cleanup(func() {
		syscall.Kill(ob.Process.Pid, syscall.SIGTERM)
		select {
		case <-obDone:
		case <-time.After(5 * time.Second):
			syscall.Kill(ob.Process.Pid, syscall.SIGKILL)
			<-obDone
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("onionbalance's log:\n%s", tail(string(b), 40))
		}
	})
	obStart := time.Now()

	base := "http://" + front
	alice := dialOnion(t, socksDialer(n.SOCKSAddr(), "alice"), base)
	t.Logf("the front answered %v after onionbalance started", time.Since(obStart).Round(time.Second))
	bob := dialOnion(t, socksDialer(n.SOCKSAddr(), "bob"), base)
	if alice.Server.Str("server") != front || bob.Server.Str("server") != front {
		t.Fatalf("server ids %q and %q, want the front's address", alice.Server.Str("server"), bob.Server.Str("server"))
	}
	wa := alice.JoinOK("behind the front", "alice")
	wb := bob.JoinOK("behind the front", "bob")
	says(t, alice, bob, "through the front")

	// Stop the backend that holds the most of them, as systemctl stop
	// does (SIGTERM: its members get 1001, its tor stops). Which one that
	// is, the backends' SIGUSR1 counts say. (A crash is TestInstanceDies
	// in internal/cluster; through Tor, see the README.)
	which := busiest(t, backends[:])
	stopped := time.Now()
	backends[which].p.Signal(syscall.SIGTERM)
	if code := backends[which].p.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("backend %d exited %d", which, code)
	}
	t.Logf("stopped backend %d in %v", which, time.Since(stopped).Round(100*time.Millisecond))

	// Both come back through the same address on fresh circuits, as
	// pages do, with their resume tokens: the only backend left takes
	// them, one moving from the stopped backend under its name.
	a2 := redial(t, n.SOCKSAddr(), "alice-again", base)
	a2.Resume("behind the front", wa, 1)
	if f := expectWelcome(t, a2); f.Str("you") != "alice" {
		t.Fatalf("alice's welcome after the stop: %v", f)
	}
	b2 := redial(t, n.SOCKSAddr(), "bob-again", base)
	b2.Resume("behind the front", wb, 1)
	if f := expectWelcome(t, b2); f.Str("you") != "bob" {
		t.Fatalf("bob's welcome after the stop: %v", f)
	}
	says(t, a2, b2, "after the stop")
	t.Logf("from stopping a backend to chatting again through the same address: %v", time.Since(stopped).Round(100*time.Millisecond))
}

// redial reconnects as the page does after its backend went away: an
// attempt the relay has not answered in 15 s (session.mjs's
// CONNECT_TIMEOUT_MS) is given up and tried again on the same circuits'
// isolation. tor's client can stay stuck on a dead backend's introduction
// points from the front's cached descriptor; after 60 s the retries ask
// for a new circuit for the site (a fresh isolation, Tor Browser's "New
// circuit for this site"). Which one it took is logged: a figure.
func redial(t *testing.T, socks, user, base string) *wstest.Client {
	t.Helper()
	start := time.Now()
	var lastErr error
	for attempt := 1; time.Since(start) < 180*time.Second; attempt++ {
		u := user
		if time.Since(start) > 60*time.Second {
			u = fmt.Sprintf("%s-%d", user, attempt)
		}
		d := socksDialer(socks, u)
		d.HandshakeTimeout = 15 * time.Second
		ws, _, err := d.Dial(wstest.WSURL(base), http.Header{"Origin": {base}})
		if err == nil {
			t.Logf("%s reconnected through the front after %v, attempt %d (new circuit for the site: %v)", user, time.Since(start).Round(100*time.Millisecond), attempt, u != user)
			return wstest.New(t, ws)
		}
		lastErr = err
		time.Sleep(time.Second)
	}
	t.Fatalf("%s could not reconnect through %s in 180 s: %v", user, base, lastErr)
	return nil
}

// busiest returns the index of the backend with the most sessions, from
// the line of counts each logs on SIGUSR1.
func busiest(t *testing.T, bs []*backend) int {
	t.Helper()
	best, most := 0, -1
	for i, b := range bs {
		before := strings.Count(b.p.Output(), "sessions=")
		b.p.Signal(syscall.SIGUSR1)
		var line string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if out := b.p.Output(); strings.Count(out, "sessions=") > before {
				line = out[strings.LastIndex(out, "sessions="):]
				break
			}
		}
		var n int
		if _, err := fmt.Sscanf(line, "sessions=%d", &n); err != nil {
			t.Fatalf("backend %d logged no counts on SIGUSR1:\n%s", i, b.p.Output())
		}
		if n > most {
			best, most = i, n
		}
	}
	return best
}

// expectWelcome reads past presence frames to the welcome.
func expectWelcome(t *testing.T, c *wstest.Client) wstest.Frame {
	t.Helper()
	for {
		switch f := c.Next(); f.Type() {
		case "welcome":
			return f
		case "error":
			t.Fatalf("join refused: %v", f)
		}
	}
}

// says sends body from one client and waits until the other has it.
func says(t *testing.T, from, to *wstest.Client, body string) {
	t.Helper()
	from.Msg(body)
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		f, err := to.Read(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for %q: %v", body, err)
		}
		if f.Type() == "msg" && wstest.Body(f) == body {
			return
		}
	}
	t.Fatalf("%q never arrived", body)
}

// controlPort returns the port of a test tor's control port.
func controlPort(t *testing.T, tor *tortest.Tor) string {
	t.Helper()
	b, err := tor.WaitFile(filepath.Join(tor.Dir(), "control.port"), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(strings.TrimSpace(b), "PORT=")
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("control port %q: %v", addr, err)
	}
	return port
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
