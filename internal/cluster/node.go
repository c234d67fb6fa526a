// Package cluster links several onionchat instances that serve the same
// rooms behind one onion address (Onionbalance in front), over NATS: an
// embedded nats-server per instance, clustered by routes (mutual TLS
// between boxes), or an external one. It is the hub's Cluster: the hub
// knows nothing of NATS, and this package nothing of WebSockets or Tor.
//
// What crosses the links, in memory only (core NATS, no JetStream, nothing
// on disk): every instance's events about its own sessions and frames
// (join, away, back, leave, broadcast, direct and bulk frames, a room's
// first GroupInfo), on the subject onionchat.ev.<instance>, in the order
// each instance made them; heartbeats on onionchat.hb.<instance>; a join's question to the
// others on onionchat.claim.<instance>, answered by each; and an
// instance's list of sessions on onionchat.sync.<instance>, asked for
// when another first hears of it or finds it missed an event.
//
// Why core NATS and not JetStream: two boxes are the setup this is for,
// and JetStream's replicated streams and key-value buckets need a
// majority of their servers (two of two, two of three) to take a write,
// so with two boxes losing either one would stop every join. Instead
// each instance is the authority over its own sessions, keeps a copy of
// the others', and forgets an instance that has been silent DeadAfter:
// liveness by leases (heartbeats), names by asking every live instance.
// The price is stated in docs/protocol.md §15: seq is per instance, and
// two instances cut off from each other serve their halves alone.
package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/onionchat/onionchat/hub"
)

const (
	subjEvent = "onionchat.ev."
	subjBeat  = "onionchat.hb."
	subjClaim = "onionchat.claim."
	subjSync  = "onionchat.sync."

	// inboxSize bounds the events waiting for this instance's hub; past
	// it NATS drops them (a slow consumer), the counters show a gap and
	// the sender is synced again.
	inboxSize = 1 << 16
	// readyTimeout bounds the embedded server's start.
	readyTimeout = 10 * time.Second
)

var bye = []byte("bye")

// byeTimeout bounds how long Close waits for its goodbye to be flushed.
const byeTimeout = time.Second

// Node is this instance's link to the others. Start it, give it to the
// hub as Config.Cluster with Config.Instance = ID(), then Attach the hub.
type Node struct {
	o   Config
	id  string
	srv *server.Server // nil with an external server
	nc  *nats.Conn
	log *slog.Logger
	h   *hub.Hub

	pubMu sync.Mutex
	sent  uint64 // events published

	mu    sync.Mutex
	peers map[string]*peer

	in   chan *nats.Msg
	subs []*nats.Subscription
	stop chan struct{}
	wg   sync.WaitGroup
}

// peer is what this instance knows of another. Only the event loop
// touches last, synced and held.
type peer struct {
	seen   time.Time
	last   uint64      // its last event applied here
	synced bool        // its sessions are known here
	asked  bool        // a sync is on its way
	held   []*nats.Msg // its events while a sync is on its way
}

// Start starts the embedded NATS server (or connects to the external
// one) and returns a Node not yet attached to a hub. The config is
// checked first: a link that would leave the machine without TLS, or
// without credentials, is refused.
func Start(o Config, log *slog.Logger) (*Node, error) {
	if err := o.check(); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if o.Password == "" {
		if err := o.ReadPassword(); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	o = o.WithDefaults()
	if o.ClaimTimeout <= 0 {
		o.ClaimTimeout = o.DeadAfter + o.Heartbeat
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var b [8]byte
	rand.Read(b[:])
	n := &Node{o: o, id: hex.EncodeToString(b[:]), log: log, peers: map[string]*peer{},
		in: make(chan *nats.Msg, inboxSize), stop: make(chan struct{})}
	opts := []nats.Option{nats.Name("onionchat-" + n.id), nats.NoEcho(), nats.MaxReconnects(-1),
		nats.ReconnectWait(200 * time.Millisecond), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("cluster: nats", "err", err)
		})}
	if o.URL != "" {
		if o.TLS() {
			opts = append(opts, nats.ClientCert(o.CertFile, o.KeyFile), nats.RootCAs(o.CAFile))
		}
		if o.User != "" {
			opts = append(opts, nats.UserInfo(o.User, o.Password))
		}
		nc, err := nats.Connect(o.URL, opts...)
		if err != nil {
			return nil, fmt.Errorf("cluster: connect to %s: %w", o.URL, err)
		}
		n.nc = nc
		return n, nil
	}
	var pw [24]byte
	rand.Read(pw[:])
	password := hex.EncodeToString(pw[:])
	srv, err := embedded(o, n.id, password)
	if err != nil {
		return nil, err
	}
	n.srv = srv
	nc, err := nats.Connect("", append(opts, nats.InProcessServer(srv), nats.UserInfo("onionchat", password))...)
	if err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("cluster: connect to the embedded NATS server: %w", err)
	}
	n.nc = nc
	return n, nil
}

// embedded starts a NATS server that takes no client connections (the
// instance talks to it in process) and routes to the peers.
func embedded(o Config, id, clientPassword string) (*server.Server, error) {
	host, port, _ := strings.Cut(o.Listen, ":")
	if i := strings.LastIndex(o.Listen, ":"); i >= 0 {
		host, port = strings.Trim(o.Listen[:i], "[]"), o.Listen[i+1:]
	}
	p := 0
	fmt.Sscan(port, &p)
	so := &server.Options{
		ServerName: "onionchat-" + id,
		// The client port: NATS opens its routes only after it (so
		// DontListen cannot be used), on loopback at a random port, with
		// a password made for this start; the instance itself talks to
		// the server in process.
		Host:     "127.0.0.1",
		Port:     server.RANDOM_PORT,
		Username: "onionchat",
		Password: clientPassword,
		NoSigs:   true,
		NoLog:    true,
		Cluster: server.ClusterOpts{
			Name:     o.Name,
			Host:     host,
			Port:     p,
			Username: o.User,
			Password: o.Password,
		},
	}
	for _, a := range o.Peers {
		u := &url.URL{Scheme: "nats-route", Host: a}
		if o.User != "" {
			u.User = url.UserPassword(o.User, o.Password)
		}
		so.Routes = append(so.Routes, u)
	}
	if o.TLS() {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: o.CertFile, KeyFile: o.KeyFile, CaFile: o.CAFile, Verify: true})
		if err != nil {
			return nil, fmt.Errorf("cluster: TLS: %w", err)
		}
		// The same config dials the other instances: it must trust the
		// owner's CA as a client too (NATS's own config parser does this).
		tc.RootCAs = tc.ClientCAs
		so.Cluster.TLSConfig = tc
		so.Cluster.TLSTimeout = 5
	}
	if os.Getenv("ONIONCHAT_NATS_LOG") != "" { // for debugging links, never in normal use
		so.NoLog, so.Debug = false, true
	}
	srv, err := server.NewServer(so)
	if err == nil && !so.NoLog {
		srv.ConfigureLogger()
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: NATS server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(readyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("cluster: the NATS server did not start on %s within %v (is the port in use?)", o.Listen, readyTimeout)
	}
	return srv, nil
}

// ID is this instance's name in the cluster, new at every start.
func (n *Node) ID() string { return n.id }

// RouteAddr is the address the embedded server listens on for the other
// instances ("" with an external server).
func (n *Node) RouteAddr() string {
	if n.srv == nil {
		return ""
	}
	if a := n.srv.ClusterAddr(); a != nil {
		return a.String()
	}
	return ""
}

// Peers is how many other instances this one counts as alive.
func (n *Node) Peers() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.peers)
}

// Attach starts relaying between h and the other instances. h must have
// been made with this Node as its Cluster and ID() as its Instance.
func (n *Node) Attach(h *hub.Hub) error {
	n.h = h
	for _, s := range []string{subjEvent + "*", subjBeat + "*"} {
		sub, err := n.nc.ChanSubscribe(s, n.in)
		if err != nil {
			return fmt.Errorf("cluster: subscribe: %w", err)
		}
		sub.SetPendingLimits(inboxSize, 256<<20)
		n.subs = append(n.subs, sub)
	}
	claims, err := n.nc.Subscribe(subjClaim+"*", n.vet)
	if err != nil {
		return fmt.Errorf("cluster: subscribe: %w", err)
	}
	syncs, err := n.nc.Subscribe(subjSync+n.id, n.snapshot)
	if err != nil {
		return fmt.Errorf("cluster: subscribe: %w", err)
	}
	n.subs = append(n.subs, claims, syncs)
	if err := n.nc.Flush(); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	n.beat()
	n.wg.Add(1)
	go n.loop()
	return nil
}

// Close tells the others this instance is leaving, stops relaying and
// stops the embedded server. Stop the hub first: its sessions' leave
// events go out before the link closes.
func (n *Node) Close() {
	select {
	case <-n.stop:
		return
	default:
	}
	if n.h != nil {
		// Best effort, and bounded: the others find a silent instance
		// dead within DeadAfter anyway. A plain Flush waits up to 10 s
		// for the server's answer, which made a stop (systemctl stop,
		// SIGTERM) take 10 s now and then.
		n.nc.Publish(subjBeat+n.id, bye)
		n.nc.FlushTimeout(byeTimeout)
	}
	n.kill()
}

// kill stops at once, telling nobody: what a crash looks like to the
// others.
func (n *Node) kill() {
	select {
	case <-n.stop:
		return
	default:
	}
	close(n.stop)
	for _, s := range n.subs {
		s.Unsubscribe()
	}
	n.nc.Close()
	n.wg.Wait()
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
	}
}

// Publish implements hub.Cluster.
func (n *Node) Publish(e *hub.Event) {
	n.pubMu.Lock()
	n.sent++
	b := appendEvent(make([]byte, 0, 64+len(e.Body)), e, n.sent)
	err := n.nc.Publish(subjEvent+n.id, b)
	n.pubMu.Unlock()
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		n.log.Warn("cluster: publish", "err", err)
	}
}

// Claim implements hub.Cluster: it asks every instance alive now and
// waits for each answer, or ClaimTimeout.
func (n *Node) Claim(c *hub.Claim) string {
	n.mu.Lock()
	want := make(map[string]bool, len(n.peers))
	for id := range n.peers {
		want[id] = true
	}
	n.mu.Unlock()
	if len(want) == 0 {
		return ""
	}
	inbox := n.nc.NewInbox()
	sub, err := n.nc.SubscribeSync(inbox)
	if err != nil {
		return hub.CodeJoinRate
	}
	defer sub.Unsubscribe()
	if err := n.nc.PublishRequest(subjClaim+n.id, inbox, appendClaim(nil, c)); err != nil {
		return hub.CodeJoinRate
	}
	deadline := time.Now().Add(n.o.ClaimTimeout)
	for len(want) > 0 && time.Now().Before(deadline) {
		m, err := sub.NextMsg(min(time.Until(deadline), n.o.Heartbeat))
		if errors.Is(err, nats.ErrTimeout) {
			// An instance that died meanwhile has no say.
			n.mu.Lock()
			for id := range want {
				if n.peers[id] == nil {
					delete(want, id)
				}
			}
			n.mu.Unlock()
			continue
		}
		if errors.Is(err, nats.ErrNoResponders) {
			// No instance listens for claims any more: every other
			// one is gone, whether or not its silence has been noticed.
			return ""
		}
		if err != nil {
			break
		}
		id, code, _ := strings.Cut(string(m.Data), " ")
		delete(want, id)
		if code != "" {
			return code
		}
	}
	// Those that did not answer count only if they are still alive.
	n.mu.Lock()
	defer n.mu.Unlock()
	for id := range want {
		if n.peers[id] != nil {
			return hub.CodeJoinRate
		}
	}
	return ""
}

// vet answers another instance's claim.
func (n *Node) vet(m *nats.Msg) {
	from := strings.TrimPrefix(m.Subject, subjClaim)
	if from == n.id || m.Reply == "" {
		return
	}
	c, err := decodeClaim(m.Data)
	code := hub.CodeNameTaken // a claim this instance cannot read gets no name
	if err == nil {
		c.Instance = from
		code = n.h.Vet(&c)
	}
	m.Respond([]byte(n.id + " " + code))
}

// snapshot answers a sync: this instance's sessions and its event
// counter, taken together so that the asker knows which events the list
// already holds.
func (n *Node) snapshot(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	// Every event up to sent changed the hub before it was published, so
	// the list reflects it; events after may be in it too, and applying
	// them again does nothing. (Members takes the hub's locks, under
	// which the hub publishes: pubMu must not be held meanwhile.)
	n.pubMu.Lock()
	sent := n.sent
	n.pubMu.Unlock()
	members := n.h.Members()
	m.Respond(appendSnapshot(nil, sent, members))
}

func (n *Node) beat() {
	n.nc.Publish(subjBeat+n.id, nil)
}

// syncReply is a sync's answer handed to the event loop.
type syncReply struct {
	from string
	data []byte
	err  error
}

// loop applies the other instances' events in order, one instance's
// after its sync, beats, and forgets instances silent for DeadAfter.
func (n *Node) loop() {
	defer n.wg.Done()
	t := time.NewTicker(n.o.Heartbeat)
	defer t.Stop()
	replies := make(chan syncReply, 16)
	var pending sync.WaitGroup
	defer pending.Wait()
	for {
		select {
		case <-n.stop:
			return
		case m := <-n.in:
			n.receive(m, replies, &pending)
		case r := <-replies:
			n.synced(r)
		case <-t.C:
			n.beat()
			n.sweep()
		}
	}
}

func (n *Node) receive(m *nats.Msg, replies chan syncReply, pending *sync.WaitGroup) {
	var from string
	beat := strings.HasPrefix(m.Subject, subjBeat)
	if beat {
		from = strings.TrimPrefix(m.Subject, subjBeat)
	} else {
		from = strings.TrimPrefix(m.Subject, subjEvent)
	}
	if from == n.id || from == "" {
		return
	}
	n.mu.Lock()
	p := n.peers[from]
	if beat && string(m.Data) == string(bye) {
		delete(n.peers, from)
		n.mu.Unlock()
		if p != nil {
			n.h.PeerGone(from)
		}
		return
	}
	if p == nil {
		p = &peer{}
		n.peers[from] = p
	}
	p.seen = time.Now()
	n.mu.Unlock()
	if !p.synced {
		if !beat {
			p.held = append(p.held, m)
		}
		if !p.asked {
			p.asked = true
			n.ask(from, replies, pending)
		}
		return
	}
	if beat {
		return
	}
	n.apply(from, p, m)
}

// apply hands one event of a synced instance to the hub, or, if events
// before it were lost, asks that instance for its sessions again.
func (n *Node) apply(from string, p *peer, m *nats.Msg) {
	var e hub.Event
	c, err := decodeEvent(m.Data, &e)
	if err != nil {
		n.log.Warn("cluster: bad event", "err", err)
		return
	}
	switch {
	case c <= p.last:
		return // in the sync already
	case c > p.last+1:
		n.log.Warn("cluster: events from an instance were lost; syncing again", "lost", c-p.last-1)
		p.synced, p.held = false, []*nats.Msg{m}
		return // the next beat or event asks again
	}
	p.last = c
	e.Instance = from
	n.h.Remote(&e)
}

// ask requests an instance's sessions; the answer comes back to the loop.
func (n *Node) ask(from string, replies chan syncReply, pending *sync.WaitGroup) {
	pending.Add(1)
	go func() {
		defer pending.Done()
		m, err := n.nc.Request(subjSync+from, nil, n.o.ClaimTimeout)
		r := syncReply{from: from, err: err}
		if err == nil {
			r.data = m.Data
		}
		select {
		case replies <- r:
		case <-n.stop:
		}
	}()
}

func (n *Node) synced(r syncReply) {
	n.mu.Lock()
	p := n.peers[r.from]
	n.mu.Unlock()
	if p == nil {
		return
	}
	p.asked = false
	if r.err != nil {
		return // asked again at its next beat
	}
	last, members, err := decodeSnapshot(r.data)
	if err != nil {
		n.log.Warn("cluster: bad sync", "err", err)
		return
	}
	n.h.Sync(r.from, members)
	p.synced, p.last = true, last
	held := p.held
	p.held = nil
	for _, m := range held {
		if p.synced {
			n.apply(r.from, p, m)
		} else {
			p.held = append(p.held, m)
		}
	}
}

// sweep forgets instances silent for DeadAfter: their sessions leave.
func (n *Node) sweep() {
	var gone []string
	n.mu.Lock()
	for id, p := range n.peers {
		if time.Since(p.seen) > n.o.DeadAfter {
			delete(n.peers, id)
			gone = append(gone, id)
		}
	}
	n.mu.Unlock()
	for _, id := range gone {
		n.log.Info("cluster: an instance stopped answering; its sessions have left")
		n.h.PeerGone(id)
	}
}
