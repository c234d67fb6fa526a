package web_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/onionchat/onionchat/hub"
	"github.com/onionchat/onionchat/web"
)

// serve runs a hub and the handler on a real listener wrapped as the
// binary wraps it, with the handler's own http.Server.
func serve(t *testing.T, hcfg hub.Config, wcfg web.Config) (addr string, h *web.Handler) {
	t.Helper()
	wcfg.Hub = runHub(t, hcfg)
	h = web.New(wcfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := h.Server()
	served := make(chan struct{})
	go func() { srv.Serve(h.Listener(ln)); close(served) }()
	t.Cleanup(func() {
		srv.Close()
		<-served
	})
	return ln.Addr().String(), h
}

// dialFrom opens a TCP connection to addr from the loopback address src.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByServer reports whether the server has closed c (it never sent
// anything on it).
func closedByServer(c net.Conn, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// getFrom fetches / over a new connection from src and returns the status.
func getFrom(t *testing.T, src, addr string) int {
	t.Helper()
	c := dialFrom(t, src, addr)
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", addr)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET / from %s: %v", src, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// heldPending is the handshake timeout of the tests that count pending
// connections: longer than any of them takes on a loaded machine, so that
// none is closed for its idleness while they count (the default, 10 s,
// was passed under the whole test suite's load).
const heldPending = 5 * time.Minute

// A peer holding its share of connections that never send has its newest
// closed at once; another peer is served meanwhile.
func TestPendingPerPeer(t *testing.T) {
	addr, h := serve(t, hub.Config{MaxConnsPerPeer: 4}, web.Config{HandshakeTimeout: heldPending})
	perPeer, _ := web.PendingLimits(hub.DefaultMaxConns, 4)
	var cs []net.Conn
	for range perPeer + 12 {
		cs = append(cs, dialFrom(t, "127.0.0.1", addr))
	}
	waitFor(t, "the newest connections to be closed", func() bool { return h.Pending() == perPeer })
	for i, c := range cs {
		if closed := closedByServer(c, 50*time.Millisecond); closed != (i >= perPeer) {
			t.Errorf("connection %d of one peer: closed %v, want %v (a peer over its share loses its newest)", i, closed, i >= perPeer)
		}
	}
	if code := getFrom(t, "127.0.0.2", addr); code != http.StatusOK {
		t.Fatalf("another peer got %d", code)
	}
	waitFor(t, "the friend's connection to leave the count", func() bool { return h.Pending() == perPeer })
}

// When every pending place is taken, a new connection takes the place of
// the oldest of the peer holding the most: 40 peers hold all they may,
// and a friend's one connection, the oldest of all, keeps its place.
func TestPendingTotalEvictsFromTheBiggest(t *testing.T) {
	addr, h := serve(t, hub.Config{MaxConnsPerPeer: 4}, web.Config{HandshakeTimeout: heldPending})
	perPeer, total := web.PendingLimits(hub.DefaultMaxConns, 4)
	friend := dialFrom(t, "127.0.0.4", addr)
	waitFor(t, "the friend's connection to be counted", func() bool { return h.Pending() == 1 })
	peers := total/perPeer + 8
	cs := make([][]net.Conn, peers)
	n := 1
	for p := range peers {
		src := fmt.Sprintf("127.0.1.%d", 10+p)
		for range perPeer {
			cs[p] = append(cs[p], dialFrom(t, src, addr))
			n++
		}
		waitFor(t, "the connections to be counted", func() bool { return h.Pending() == min(n, total) })
	}
	if closedByServer(friend, 20*time.Millisecond) {
		t.Fatal("the friend's only pending connection was closed to make room for attackers")
	}
	evicted := n - total
	// The count drops as a connection is chosen, its close follows on
	// the accepting goroutine: wait (bounded) until that many have
	// closed, then look at which.
	isClosed := make([][]bool, peers)
	for p := range cs {
		isClosed[p] = make([]bool, len(cs[p]))
	}
	deadline := time.Now().Add(10 * time.Second)
	for seen := 0; seen < evicted && time.Now().Before(deadline); {
		for p, conns := range cs {
			for i, c := range conns {
				if !isClosed[p][i] && closedByServer(c, time.Millisecond) {
					isClosed[p][i] = true
					seen++
				}
			}
		}
	}
	closed := 0
	for p, conns := range cs {
		k := 0
		for i := range conns {
			if isClosed[p][i] {
				if i != k {
					t.Errorf("peer %d: connection %d closed but not its older %d", p, i, k)
				}
				k++
			}
		}
		if k > (evicted+peers-1)/peers {
			t.Errorf("peer %d lost %d connections; %d evicted among %d equal peers", p, k, evicted, peers)
		}
		closed += k
	}
	if closed != evicted {
		t.Fatalf("%d connections closed, want %d", closed, evicted)
	}
	if code := getFrom(t, "127.0.0.2", addr); code != http.StatusOK {
		t.Fatalf("a friend got %d while every pending place was taken", code)
	}
	// Its connection (Connection: close) leaves a place free once the
	// server has closed it.
	waitFor(t, "the friend's GET connection to leave the count", func() bool { return h.Pending() == total-1 })
	// The friend's WebSocket, once upgraded, is the hub's to count.
	d := websocket.Dialer{NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}).DialContext}
	ws, _, err := d.Dial("ws://"+addr+"/ws", http.Header{"Origin": {"http://" + addr}})
	if err != nil {
		t.Fatalf("a friend's WebSocket while every pending place was taken: %v", err)
	}
	defer ws.Close()
	waitFor(t, "the upgraded connection to leave the count", func() bool { return h.Pending() == total-1 })
}

// An idle keep-alive connection counts as pending, and is closed after
// the handshake timeout; so is one that never sends its request.
func TestPendingClosedAfterHandshakeTimeout(t *testing.T) {
	addr, h := serve(t, hub.Config{}, web.Config{HandshakeTimeout: 300 * time.Millisecond})
	silent := dialFrom(t, "127.0.0.1", addr)
	keep := dialFrom(t, "127.0.0.1", addr)
	fmt.Fprintf(keep, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	resp, err := http.ReadResponse(bufio.NewReader(keep), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /: %v %v", resp, err)
	}
	resp.Body.Close()
	if n := h.Pending(); n != 2 {
		t.Fatalf("pending %d, want 2 (a silent and an idle keep-alive connection)", n)
	}
	start := time.Now()
	waitFor(t, "both to be closed", func() bool { return h.Pending() == 0 })
	if !closedByServer(silent, time.Second) || !closedByServer(keep, time.Second) {
		t.Fatal("a connection is still open")
	}
	t.Logf("closed %v after the handshake timeout of 300ms", time.Since(start).Round(10*time.Millisecond))
}

// Only the server's own names are answered (DNS rebinding): any other
// Host gets 421 on every path, with the security headers; nil Hosts means
// the loopback names on the request's port.
func TestHostNotOursRefused421(t *testing.T) {
	addr, _ := serve(t, hub.Config{}, web.Config{})
	_, port, _ := net.SplitHostPort(addr)
	check := func(addr, host string, want int) {
		t.Helper()
		for _, path := range []string{"/", "/ws", "/nope"} {
			c := dialFrom(t, "127.0.0.1", addr)
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nOrigin: http://%[2]s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
				"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", path, host)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("%s with Host %s: %v", path, host, err)
			}
			resp.Body.Close()
			c.Close() // one peer may hold only a few connections open
			got, w := resp.StatusCode, want
			if path == "/ws" && want == 200 {
				w = http.StatusSwitchingProtocols
			} else if path == "/nope" && want == 200 {
				w = 404
			}
			if got != w {
				t.Errorf("%s with Host %s: %d, want %d", path, host, got, w)
			}
			for k, v := range web.Headers {
				if got == http.StatusMisdirectedRequest && resp.Header.Get(k) != v {
					t.Errorf("421 response lacks %s", k)
				}
			}
		}
	}
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "LOCALHOST:" + port, "[::1]:" + port} {
		check(addr, host, 200)
	}
	for _, host := range []string{"rebind.attacker.example:" + port, "127.0.0.1", "localhost:1", "127.0.0.1:" + port + ".evil", ""} {
		check(addr, host, http.StatusMisdirectedRequest)
	}

	addr, _ = serve(t, hub.Config{}, web.Config{Hosts: []string{"chat.example.org", "*.lan.example:8443", "x.onion:80"}})
	for _, host := range []string{"chat.example.org", "Chat.Example.Org", "pi.lan.example:8443", "x.onion:80"} {
		check(addr, host, 200)
	}
	for _, host := range []string{"chat.example.org:8443", "lan.example:8443", "a.b.lan.example:8443", "pi.lan.example", ".lan.example:8443", "x.onion", "127.0.0.1:" + port} {
		check(addr, host, http.StatusMisdirectedRequest)
	}
}
