package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/onionchat/onionchat/internal/testing/wstest"
)

// admissionConfig makes the limits bite with 100 attacker peers: 100 × 4
// WebSockets want twice max_conns, 100 × 8 pending connections want three
// times the pending bound (max(256, max_conns/4) = 256), and rooms of
// their own want more than max_rooms. Every other limit is the default,
// join_rate included (1 a second, 5 at once, per address).
const admissionConfig = `mode = "lan"
[hub]
max_conns = 200
max_rooms = 50
max_conns_per_peer = 4
`

// wsDialer dials WebSockets from the loopback address src, as a browser
// at that address would (Origin of the page, certificate not checked).
func wsDialer(src string) *websocket.Dialer {
	return &websocket.Dialer{
		NetDialContext:   (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext,
		TLSClientConfig:  &tls.Config{InsecureSkipVerify: true},
		HandshakeTimeout: 10 * time.Second,
	}
}

func dialWSFrom(ctx context.Context, src, base string) (*websocket.Conn, error) {
	ws, _, err := wsDialer(src).DialContext(ctx, wstest.WSURL(base), http.Header{"Origin": {strings.TrimSuffix(base, "/")}})
	return ws, err
}

// attackers counts what the attacker peers hold and how they were told no.
type attackers struct {
	joined, pending           atomic.Int64 // held now
	joins, refused, evictions atomic.Int64 // in all
	pendingClosed             atomic.Int64 // pending connections the server closed
	dials                     atomic.Int64
}

// holdWebSocket keeps one WebSocket of peer src joined to room (a room of
// its own, alone or with one other of its sockets), reconnecting whenever
// it is refused or evicted, until ctx ends.
func (a *attackers) holdWebSocket(ctx context.Context, src, base, room, name string) {
	for ctx.Err() == nil {
		ws, err := dialWSFrom(ctx, src, base)
		a.dials.Add(1)
		if err == nil {
			stop := context.AfterFunc(ctx, func() { ws.Close() })
			ws.WriteMessage(websocket.TextMessage, []byte(`{"v":2,"type":"join","room":"`+wstest.RoomID(room)+`","name":"`+name+`"}`))
			in := false
			for {
				_, b, err := ws.ReadMessage()
				if err != nil {
					break
				}
				s := string(b)
				switch {
				case strings.Contains(s, `"type":"welcome"`):
					in = true
					a.joined.Add(1)
					a.joins.Add(1)
				case strings.Contains(s, `"code":"evicted"`):
					a.evictions.Add(1)
				case strings.Contains(s, `"type":"error"`) && !in:
					a.refused.Add(1)
				}
			}
			if in {
				a.joined.Add(-1)
			}
			stop()
			ws.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// holdPending keeps one connection of peer src open that never sends a
// byte, reconnecting whenever the server closes it, until ctx ends.
func (a *attackers) holdPending(ctx context.Context, src, addr string) {
	for ctx.Err() == nil {
		c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext(ctx, "tcp", addr)
		if err == nil {
			a.pending.Add(1)
			stop := context.AfterFunc(ctx, func() { c.Close() })
			c.Read(make([]byte, 1)) // until the server closes it
			if ctx.Err() == nil {
				a.pendingClosed.Add(1)
			}
			stop()
			c.Close()
			a.pending.Add(-1)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestFriendJoinsUnderAttack: 100 attacker peers (127.0.0.2 to
// 127.0.0.101) each hold their maximum of WebSockets, joined to rooms of
// their own (two together, two alone), and of pending connections that
// never send, reconnecting whenever they lose one. Alice and bob chat in
// a room. Five friends, each from an address of their own, join alice and
// bob's room one after the other and get a message through. The hub's
// admission policy gives each friend the place of an attacker alone in a
// room or not yet joined; alice and bob are never evicted. The times are
// printed (a figure, not a gate).
func TestFriendJoinsUnderAttack(t *testing.T) {
	const peers, wsPerPeer, pendingPerPeer = 100, 4, 8
	cfg := filepath.Join(t.TempDir(), "c.toml")
	must(t, os.WriteFile(cfg, []byte(admissionConfig), 0o600))
	p := Start(t, "--config", cfg, "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "data"))
	addr := hostPort(p.URL)

	dialAs := func(src string) *wstest.Client {
		t.Helper()
		ws, err := dialWSFrom(context.Background(), src, p.URL)
		if err != nil {
			t.Fatalf("dial from %s: %v", src, err)
		}
		return wstest.New(t, ws)
	}
	alice, bob := dialAs("127.0.0.150"), dialAs("127.0.0.151")
	wstest.Pair(alice, bob, "friends")

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var a attackers
	defer func() { cancel(); wg.Wait() }()
	for k := range peers {
		src := fmt.Sprintf("127.0.0.%d", 2+k)
		for j := range wsPerPeer {
			room := fmt.Sprintf("attacker %d pair", k)
			if j >= 2 {
				room = fmt.Sprintf("attacker %d alone %d", k, j)
			}
			wg.Go(func() { a.holdWebSocket(ctx, src, p.URL, room, fmt.Sprintf("a%d", j)) })
		}
	}
	// Let the WebSockets in first: a peer holding its pending share has
	// every further connection of its own closed.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && a.joins.Load() < 2*200 {
		time.Sleep(50 * time.Millisecond)
	}
	for k := range peers {
		src := fmt.Sprintf("127.0.0.%d", 2+k)
		for range pendingPerPeer {
			wg.Go(func() { a.holdPending(ctx, src, addr) })
		}
	}
	time.Sleep(2 * time.Second)
	sessions, pending, g := stats(t, p)
	t.Logf("attackers hold %d joined WebSockets and %d open TCP connections that never send (of %d and %d they want); server: %d sessions, %d pending, %d goroutines; so far %d joins, %d refused, %d evicted, %d pending closed",
		a.joined.Load(), a.pending.Load(), peers*wsPerPeer, peers*pendingPerPeer, sessions, pending, g, a.joins.Load(), a.refused.Load(), a.evictions.Load(), a.pendingClosed.Load())
	if a.refused.Load()+a.evictions.Load() == 0 || a.pendingClosed.Load() == 0 {
		t.Fatalf("the limits were not reached (nothing refused, evicted or closed): the test shows nothing")
	}

	var times []time.Duration
	for i := range 5 {
		name := fmt.Sprintf("friend%d", i)
		start := time.Now()
		ws, err := dialWSFrom(context.Background(), fmt.Sprintf("127.0.0.%d", 160+i), p.URL)
		if err != nil {
			t.Fatalf("%s could not connect under attack: %v", name, err)
		}
		f := wstest.New(t, ws)
		f.Join("friends", name)
		if w := f.Next(); w.Type() != "welcome" {
			t.Fatalf("%s could not join under attack: %v", name, w)
		}
		msg := "hello " + name
		alice.Msg(msg)
		for {
			m := f.Next()
			if m.Type() == "msg" && wstest.Body(m) == msg {
				break
			}
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	sessions, pending, _ = stats(t, p)
	t.Logf("5 friends joined alice and bob's room and got a message through in %v (median %v, worst %v); then the attackers held %d joined WebSockets and %d open TCP connections (server: %d sessions, %d pending), after %d joins, %d refused, %d evicted, %d pending closed in all",
		times, times[2].Round(time.Millisecond), times[4].Round(time.Millisecond), a.joined.Load(), a.pending.Load(), sessions, pending,
		a.joins.Load(), a.refused.Load(), a.evictions.Load(), a.pendingClosed.Load())

	// Alice and bob kept their places: bob reads every friend's join and
	// alice's messages, and chats on.
	bob.Msg("still here")
	for {
		f, err := alice.Read(wstest.Timeout)
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				t.Fatalf("alice was closed %d under attack", ce.Code)
			}
			t.Fatalf("alice: %v", err)
		}
		if f.Type() == "msg" && wstest.Body(f) == "still here" {
			break
		}
		if f.Type() == "error" {
			t.Fatalf("alice got %v", f)
		}
	}
}
