package e2e

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/onionchat/onionchat/internal/testing/wstest"
)

// freeTCPPort returns a loopback port nobody listens on now.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestClusterNeverOpen: a [cluster] without credentials was accepted, and
// a rogue NATS server on the same machine joined the routes and read
// every room id, name, session id, token hash and ciphertext. Now
// check-config refuses it, naming the key, and so does a password file
// others can read; and with credentials, a rogue route without them gets
// nothing while two members chat.
func TestClusterNeverOpen(t *testing.T) {
	dir := t.TempDir()
	route := freeTCPPort(t)
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, []byte(body), mode))
		must(t, os.Chmod(p, mode))
		return p
	}
	checkConfig := func(cfg string) (string, error) {
		out, err := exec.Command(Binary(t), "check-config", "--config", cfg).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	section := fmt.Sprintf("mode = \"local\"\n[cluster]\nlisten = \"127.0.0.1:%d\"\n", route)
	open := write("open.toml", section, 0o600)
	out, err := checkConfig(open)
	t.Logf("a [cluster] without credentials: check-config says %q (%v)", out, err)
	if err == nil || !strings.Contains(out, "cluster.user") {
		t.Errorf("a [cluster] without credentials passed check-config: %s", out)
	}
	readable := write("readable.password", "links password\n", 0o644)
	shared := write("shared.toml", section+fmt.Sprintf("user = \"oc\"\npassword_file = %q\n", readable), 0o600)
	out, err = checkConfig(shared)
	t.Logf("a password file others can read: check-config says %q (%v)", out, err)
	if err == nil || !strings.Contains(out, "cluster.password_file") {
		t.Errorf("a password file others can read passed check-config: %s", out)
	}
	if t.Failed() {
		return
	}

	pw := write("links.password", "links password\n", 0o600)
	cfg := write("c.toml", section+fmt.Sprintf("user = \"oc\"\npassword_file = %q\n", pw), 0o600)
	p := Start(t, "--config", cfg, "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"))

	// The rogue: a NATS server of its own that routes to the instance
	// without credentials, and a client of it that listens to everything.
	rogue, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		Cluster: server.ClusterOpts{Name: "onionchat", Host: "127.0.0.1", Port: freeTCPPort(t)},
		Routes:  []*url.URL{{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", route)}}})
	if err != nil {
		t.Fatal(err)
	}
	rogue.Start()
	defer func() { rogue.Shutdown(); rogue.WaitForShutdown() }()
	if !rogue.ReadyForConnections(10 * time.Second) {
		t.Fatal("the rogue NATS server did not start")
	}
	nc, err := nats.Connect(rogue.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var got atomic.Int64
	if _, err := nc.Subscribe(">", func(*nats.Msg) { got.Add(1) }); err != nil {
		t.Fatal(err)
	}
	// Routes retry every second or so; give it several tries while two
	// members join and chat.
	a := wstest.DialJoin(t, p.URL, "room", "alice")
	b := wstest.DialJoin(t, p.URL, "room", "bob")
	a.Expect("join")
	for i := range 5 {
		a.Says(b, "alice", fmt.Sprint("secret ", i))
		time.Sleep(time.Second)
	}
	t.Logf("with credentials: the rogue has %d routes and heard %d messages", rogue.NumRoutes(), got.Load())
	if rogue.NumRoutes() != 0 || got.Load() != 0 {
		t.Fatalf("a route without credentials got %d routes and %d messages", rogue.NumRoutes(), got.Load())
	}
}
