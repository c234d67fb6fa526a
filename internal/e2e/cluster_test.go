package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/onionchat/onionchat/hub"
	"github.com/onionchat/onionchat/internal/cluster"
	"github.com/onionchat/onionchat/internal/need"
	"github.com/onionchat/onionchat/internal/tortest"
	"github.com/onionchat/onionchat/internal/wstest"
	"github.com/onionchat/onionchat/onion"
	"github.com/onionchat/onionchat/web"
)

// backend is one onionchat instance behind an Onionbalance front: its own
// tor and onion service (HiddenServiceOnionbalanceInstance), hub, web
// handler and NATS node, all real, in this process.
type backend struct {
	svc  *onion.Service
	h    *hub.Hub
	node *cluster.Node
	stop func()
}

func startBackend(t *testing.T, n *tortest.Network, front string, route int, peers []string) *backend {
	t.Helper()
	node, err := cluster.Start(cluster.Options{Listen: "127.0.0.1:" + strconv.Itoa(route), Peers: peers}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	svc, err := onion.Start(ctx, onion.Conf{DataDir: filepath.Join(t.TempDir(), "data"), RuntimeDir: shortDir(t),
		OnionbalanceFront: front, PublishTimeout: onionStartTimeout, ExtraTorrc: n.TorrcLines()})
	if err != nil {
		node.Close()
		t.Fatal(err)
	}
	// Every backend answers to the front's address and calls itself by
	// it: pages derive their room keys from the server id, which must be
	// the same on every backend.
	h := hub.New(hub.Config{ServerID: front, Wire: web.Wire{}, Cluster: node, Instance: node.ID()})
	if err := node.Attach(h); err != nil {
		t.Fatal(err)
	}
	handler := web.New(web.Config{Hub: h, Hosts: []string{front, front + ":80", svc.Addr}})
	srv := handler.Server()
	go srv.Serve(handler.Listener(svc.Listener))
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { h.Run(hctx); close(done) }()
	b := &backend{svc: svc, h: h, node: node}
	stopped := false
	b.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel() // the hub closes every connection (1001), and its members leave
		<-done
		node.Close()
		srv.Close()
		svc.Close()
	}
	t.Cleanup(b.stop)
	return b
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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
	ports := []int{freeTCPPort(t), freeTCPPort(t)}
	route := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	var backends [2]*backend
	errs := make(chan error, 2)
	for i := range 2 {
		go func() {
			defer func() { errs <- nil }()
			backends[i] = startBackend(t, n, front, ports[i], []string{route(1 - i)})
		}()
	}
	<-errs
	<-errs
	if backends[0] == nil || backends[1] == nil {
		t.Fatal("a backend did not start")
	}
	t.Logf("network and two backends published in %v", time.Since(start).Round(time.Second))

	cfg, addr, err := onion.FrontConfig(filepath.Join(frontDir, onion.SecretKeyFile), []string{backends[0].svc.Addr, backends[1].svc.Addr})
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

	// Stop a backend that holds a member: its hub closes their
	// connections (1001), then its tor goes.
	which := 0
	if backends[1].h.Stats().Sessions > backends[0].h.Stats().Sessions {
		which = 1
	}
	held := backends[which].h.Stats().Sessions
	stopped := time.Now()
	backends[which].stop()
	t.Logf("stopped backend %d, which held %d of the 2 members", which, held)

	// Both come back through the same address on fresh circuits, as
	// pages do, with their resume tokens: the only backend left takes
	// them, one moving from the stopped backend under its name.
	a2 := dialOnion(t, socksDialer(n.SOCKSAddr(), "alice-again"), base)
	a2.Resume("behind the front", wa, 1)
	if f := expectWelcome(t, a2); f.Str("you") != "alice" {
		t.Fatalf("alice's welcome after the stop: %v", f)
	}
	b2 := dialOnion(t, socksDialer(n.SOCKSAddr(), "bob-again"), base)
	b2.Resume("behind the front", wb, 1)
	if f := expectWelcome(t, b2); f.Str("you") != "bob" {
		t.Fatalf("bob's welcome after the stop: %v", f)
	}
	says(t, a2, b2, "after the stop")
	t.Logf("from stopping a backend to chatting again through the same address: %v", time.Since(stopped).Round(100*time.Millisecond))
	if st := backends[1-which].h.Stats(); st.Sessions != 2 {
		t.Errorf("the remaining backend holds %d connections, want both members", st.Sessions)
	}
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
