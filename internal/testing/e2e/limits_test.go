package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/onionchat/onionchat/hub"
	"github.com/onionchat/onionchat/internal/testing/wstest"
	"github.com/onionchat/onionchat/web"
)

// statsRe reads the counts of the line SIGUSR1 makes onionchat log.
var statsRe = regexp.MustCompile(`msg=stats sessions=(\d+) pending=(\d+) .*goroutines=(\d+)`)

// stats asks p for its counts (SIGUSR1) and returns the next stats line's
// sessions, pending connections and goroutines.
func stats(t *testing.T, p *Proc) (sessions, pending, goroutines int) {
	t.Helper()
	before := len(statsRe.FindAllString(p.Output(), -1))
	must(t, p.Signal(syscall.SIGUSR1))
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		all := statsRe.FindAllStringSubmatch(p.Output(), -1)
		if len(all) > before {
			m := all[len(all)-1]
			a, _ := strconv.Atoi(m[1])
			b, _ := strconv.Atoi(m[2])
			c, _ := strconv.Atoi(m[3])
			return a, b, c
		}
	}
	t.Fatalf("no stats line after SIGUSR1:\n%s", p.Output())
	return
}

// clientHello returns the first record a TLS client sends: a ClientHello
// that a connection can send and then never finish the handshake.
func clientHello(t *testing.T) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer b.Close()
	go func() {
		tls.Client(a, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}).Handshake()
		a.Close()
	}()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	a.Close()
	return append(hdr, body...)
}

// dialFrom opens a TCP connection from the loopback address src.
func dialFrom(src, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	return d.Dial("tcp", addr)
}

// TestIdleConnectionsBounded: 2,000 TCP connections from 100 addresses
// that never send (half of them) or send a ClientHello and never finish
// TLS (the other half) are held against the real binary in LAN mode. The
// server's goroutines stay bounded by its pending-connection limit
// (before the limit, each held a goroutine: 2,006 in all), and a friend
// connects, joins and chats meanwhile.
func TestIdleConnectionsBounded(t *testing.T) {
	const held, addrs = 2000, 100
	data := filepath.Join(t.TempDir(), "data")
	p := Start(t, "--mode", "lan", "--listen", "127.0.0.1:0", "--data-dir", data)
	u, _ := url.Parse(p.URL)
	_, _, base := stats(t, p)
	_, total := web.PendingLimits(hub.DefaultMaxConns, hub.DefaultMaxConnsPerPeer) // the defaults' bound: max(256, max_conns/4)

	hello := clientHello(t)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	start := time.Now()
	for i := range held {
		c, err := dialFrom(fmt.Sprintf("127.0.2.%d", 1+i%addrs), u.Host)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if i%2 == 1 {
			c.Write(hello)
		}
		conns = append(conns, c)
	}
	opened := time.Since(start)
	time.Sleep(200 * time.Millisecond) // let the server take them all in
	_, pending, g := stats(t, p)
	t.Logf("%d idle connections opened in %v: server pending %d, goroutines %d (%d before)", held, opened.Round(time.Millisecond), pending, g, base)
	if pending > total {
		t.Errorf("pending connections %d, over the bound %d", pending, total)
	}
	if g > base+total+16 {
		t.Errorf("goroutines %d with %d idle connections held: want at most %d (%d before, plus the %d pending)", g, held, base+total+16, base, total)
	}

	// A friend gets in and chats while the connections are held.
	joined := time.Now()
	a := wstest.Dial(t, p.URL)
	b := wstest.Dial(t, p.URL)
	wstest.Pair(a, b, "friends")
	a.Says(b, "alice", "still here")
	t.Logf("friends joined and chatted in %v beside them", time.Since(joined).Round(time.Millisecond))
	sessions, _, g := stats(t, p)
	if sessions != 2 || g > base+total+16 {
		t.Errorf("with the friends in: %d sessions, %d goroutines", sessions, g)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	waitFor(t, "the pending count to fall", 15*time.Second, func() bool {
		_, pending, _ := stats(t, p)
		return pending == 0
	})
	if out := p.Output(); strings.Contains(out, "127.0.2.") {
		t.Errorf("the server logged a client address:\n%s", out)
	}
}

// TestPingFloodClosed: every frame counts, control frames too. Against the
// real binary, a client that sends 20,000 WebSocket pings (before, all were
// answered and it stayed) gets at most its burst answered and is closed
// with 1008; a member beside it chats on.
func TestPingFloodClosed(t *testing.T) {
	p := Start(t, "--mode", "lan", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "data"))
	member := wstest.DialJoin(t, p.URL, "r", "member")
	c := wstest.DialJoin(t, p.URL, "r", "pinger")
	member.Expect("join")
	var pongs atomic.Int64
	c.SetPongHandler(func(string) error { pongs.Add(1); return nil })
	start := time.Now()
	sent := 0
	for ; sent < 20000; sent++ {
		if c.WriteControl(websocket.PingMessage, nil, time.Now().Add(5*time.Second)) != nil {
			break
		}
	}
	code := c.ExpectClose()
	t.Logf("%d pings written in %v; %d answered; closed %d", sent, time.Since(start).Round(time.Millisecond), pongs.Load(), code)
	if code != websocket.ClosePolicyViolation {
		t.Fatalf("close %d, want 1008", code)
	}
	if n := pongs.Load(); n > 40 {
		t.Errorf("%d pings answered, more than the burst (40)", n)
	}
	if f := member.Expect("leave"); f.Str("name") != "pinger" {
		t.Fatalf("member got %v", f)
	}
	m2 := wstest.DialJoin(t, p.URL, "r", "friend")
	member.Expect("join")
	m2.Msg("hi")
	if f := member.Expect("msg"); wstest.Body(f) != "hi" {
		t.Fatalf("member got %v", f)
	}
}
