package web

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// Limits on connections before the WebSocket upgrade (docs/protocol.md §5,
// "Connections before the upgrade"): a TLS handshake, an HTTP request, an
// idle keep-alive connection. Each costs a goroutine and buffers, so they
// are counted and bounded like WebSockets are, with their own share.
const (
	// MinPendingPerPeer is the least a peer may have pending, whatever
	// max_conns_per_peer is: a browser opens a few connections at once
	// to load the page.
	MinPendingPerPeer = 8
	// PageConns is how many connections one page load may hold at once
	// before the upgrade: Chromium, Firefox and Tor Browser open up to 6
	// per host and keep them for keep-alive. Each session a peer may hold
	// (max_conns_per_peer) is a page loaded so, perhaps at the same time
	// as the others (two browser profiles, a browser restoring its tabs).
	PageConns = 6
	// MinPendingTotal is the least the server keeps pending in all.
	MinPendingTotal = 256
	// MinClosingConns is how many connections beyond every session and
	// every pending connection the listeners hold open at most (or
	// MaxConns, if more) before they stop accepting: connections being
	// refused, evicted or closed linger up to two seconds for their close
	// frame, and an attacker reconnecting at once keeps hundreds of them
	// in that state.
	MinClosingConns = 1024
)

// PendingLimits returns the bounds on connections before the upgrade for
// a hub's limits: per peer PageConns × MaxConnsPerPeer (at least
// MinPendingPerPeer), in all max(MinPendingTotal, MaxConns/4).
func PendingLimits(maxConns, maxConnsPerPeer int) (perPeer, total int) {
	return max(MinPendingPerPeer, PageConns*maxConnsPerPeer), max(MinPendingTotal, maxConns/4)
}

// gate counts the connections of its listeners from Accept until they are
// upgraded to a WebSocket (the hub counts them from then on) or closed.
// When all pending places are taken, a new connection takes the place of
// the oldest pending one of the peer that holds the most; a peer over its
// share has its newest connection closed. So a friend's connection gets
// in, and stays until it is upgraded, while attackers hold many.
//
// A TCP or unix connection's peer is counted in Accept, where its address
// is at hand. Any other's is learnt on the connection's own goroutine, at
// its first Read or RemoteAddr: behind tor, RemoteAddr reads the PROXY
// header (onion.CircuitListener), which must not hold up Accept. Until
// then it counts toward a peer of its own, "not known yet".
type gate struct {
	perPeer, total int
	open           chan struct{} // a token per open connection, upgraded or not

	mu         sync.Mutex
	head, tail *gateConn // pending connections, oldest first
	n          int
	unknown    int            // pending connections whose peer is not known yet
	peers      map[string]int // pending connections per known peer
}

func newGate(perPeer, total, maxOpen int) *gate {
	return &gate{perPeer: perPeer, total: total, open: make(chan struct{}, maxOpen), peers: make(map[string]int)}
}

// States of a gateConn.
const (
	connPending = iota
	connUpgraded
	connClosed
)

type gateConn struct {
	net.Conn
	g          *gate
	once       sync.Once
	closed     atomic.Bool
	prev, next *gateConn
	state      uint8  // guarded by g.mu
	peer       string // guarded by g.mu; "" until known
}

// gateListener is a listener whose connections the gate counts. Accept
// waits while the gate's open connections are at their bound, so that no
// flood of connections can take every file descriptor. (This is what
// x/net's netutil.LimitListener does, but its connections hide the
// CloseWrite that a lingering close needs.)
type gateListener struct {
	net.Listener
	g         *gate
	done      chan struct{}
	closeOnce sync.Once
}

func (l *gateListener) Accept() (net.Conn, error) {
	select {
	case l.g.open <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.g.open
		return nil, err
	}
	gc := &gateConn{Conn: c, g: l.g}
	if old := l.g.add(gc); old != nil {
		old.Close()
	}
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
		// Their RemoteAddr is at hand: count the peer now, in Accept's
		// order, rather than when the connection's goroutine first runs
		// (late, on a busy server).
		gc.identify()
	}
	return gc, nil
}

func (l *gateListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// add appends c as the newest pending connection and returns the one
// that must make room for it, if all places are taken: the oldest pending
// connection of the peer that holds the most. So a friend, with one
// connection pending, keeps it while an attacker holds several; among
// equals, the oldest goes.
func (g *gate) add(c *gateConn) (evict *gateConn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n >= g.total {
		// Connections whose peer is not known yet count as one peer: on
		// a server too busy to read tor's PROXY headers, they are the
		// flood.
		most := 1
		for _, n := range g.peers {
			most = max(most, n)
		}
		unknown := g.unknown > most
		evict = g.head
		for x := g.head; x != nil; x = x.next {
			if unknown && x.peer == "" || !unknown && x.peer != "" && g.peers[x.peer] == most {
				evict = x
				break
			}
		}
		g.unlink(evict)
		evict.state = connClosed
	}
	c.prev = g.tail
	if g.tail != nil {
		g.tail.next = c
	} else {
		g.head = c
	}
	g.tail = c
	g.n++
	g.unknown++
	return evict
}

// unlink removes a pending connection from the list and its peer's count.
func (g *gate) unlink(c *gateConn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		g.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		g.tail = c.prev
	}
	c.prev, c.next = nil, nil
	g.n--
	if c.peer == "" {
		g.unknown--
	} else {
		if n := g.peers[c.peer] - 1; n > 0 {
			g.peers[c.peer] = n
		} else {
			delete(g.peers, c.peer)
		}
	}
}

// release takes c out of the pending count for good.
func (g *gate) release(c *gateConn, state uint8) {
	g.mu.Lock()
	if c.state == connPending {
		g.unlink(c)
	}
	if c.state != connClosed {
		c.state = state
	}
	g.mu.Unlock()
}

// pending returns how many connections are pending.
func (g *gate) pending() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

// identify learns c's peer and counts c for it. If the peer already has
// its share, its newest pending connection (by Accept's order: c, or one
// accepted after c but identified first) is closed.
func (c *gateConn) identify() {
	c.once.Do(func() {
		key := peerKey(c.Conn.RemoteAddr())
		g := c.g
		var evict *gateConn
		g.mu.Lock()
		if c.state == connPending {
			if g.peers[key] >= g.perPeer {
				evict = c
				for x := g.tail; x != c; x = x.prev {
					if x.peer == key {
						evict = x
						break
					}
				}
			}
			if evict != c {
				g.peers[key]++
				c.peer = key
				g.unknown--
			}
		}
		g.mu.Unlock()
		if evict != nil {
			evict.Close()
		}
	})
}

func (c *gateConn) Read(p []byte) (int, error) {
	c.identify()
	return c.Conn.Read(p)
}

func (c *gateConn) RemoteAddr() net.Addr {
	c.identify()
	return c.Conn.RemoteAddr()
}

func (c *gateConn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return c.Conn.Close()
	}
	c.g.release(c, connClosed)
	err := c.Conn.Close()
	<-c.g.open
	return err
}

// CloseWrite shuts down the writing side of the connection underneath, if
// it has one (TCP and unix sockets do).
func (c *gateConn) CloseWrite() error {
	nc := c.Conn
	for {
		if cw, ok := nc.(interface{ CloseWrite() error }); ok {
			return cw.CloseWrite()
		}
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			return errors.ErrUnsupported
		}
		nc = u.NetConn()
	}
}

// NetConn returns the connection underneath, as tls.Conn's does.
func (c *gateConn) NetConn() net.Conn { return c.Conn }

// connState is the http.Server hook that sees a connection upgraded.
func (g *gate) connState(c net.Conn, st http.ConnState) {
	if st != http.StateHijacked {
		return
	}
	for c != nil {
		if gc, ok := c.(*gateConn); ok {
			g.release(gc, connUpgraded)
			return
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return
		}
		c = u.NetConn()
	}
}

// peerKey is the key per-peer limits count by: the remote host, or for
// listeners that name something else as the remote address (a Tor
// circuit), that address as a whole.
func peerKey(a net.Addr) string {
	if a == nil || a.String() == "" {
		return "-" // never "", which the gate keeps for "not known yet"
	}
	return hostKey(a.String())
}

func hostKey(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
