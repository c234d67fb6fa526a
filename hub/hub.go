package hub

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero values of Config. config.example.toml documents the
// same numbers; internal/config takes them from here.
const (
	DefaultMaxFrameBytes   = 64 << 10
	DefaultRate            = 10 // frames per second, sustained
	DefaultBurst           = 40 // frames at once
	DefaultMaxConns        = 1000
	DefaultMaxConnsPerPeer = 16
	DefaultMaxRooms        = 200
	DefaultMaxMembers      = 100
	DefaultSendQueue       = 4096    // frames waiting for one slow reader
	DefaultSendQueueBytes  = 1 << 20 // bytes waiting for one slow reader
	DefaultPingInterval    = 20 * time.Second
	DefaultIdleTimeout     = 60 * time.Second
	DefaultJoinTimeout     = 30 * time.Second
	DefaultWriteTimeout    = 20 * time.Second
	DefaultHistoryTTL      = time.Hour

	// MaxHistoryBytes caps the backlog of one room, whatever
	// Config.HistoryMessages says, so that history cannot exhaust a small
	// machine's memory.
	MaxHistoryBytes = 1 << 20

	// sweepsPerPing is how many sweeps Run makes per PingInterval (at most
	// one a second, at least one every 10 ms).
	sweepsPerPing = 16

	// floodFactor: a connection that has had this many times Burst frames
	// dropped in a row is closed with ClosePolicy.
	floodFactor = 4

	// shutdownGrace bounds how long Run waits, after its context ends, for
	// sessions to flush their close frames before it cuts them off.
	shutdownGrace = 3 * time.Second
)

// Config holds the hub's limits. Every zero value means the matching
// Default constant, except HistoryMessages (zero: no backlog), ServerID
// (empty: none), Wire (nil: payloads are written as they are) and Logger
// (nil: silent).
type Config struct {
	MaxFrameBytes   int     // largest client frame; the transport enforces it, the hub announces it
	Rate            float64 // frames per second one connection may send, sustained
	Burst           int     // frames one connection may send at once
	MaxConns        int     // live connections in all
	MaxConnsPerPeer int     // live connections from one peer (address or Tor circuit)
	MaxRooms        int     // rooms in all
	MaxMembers      int     // members of one room
	SendQueue       int     // frames queued for one connection before it is dropped as too slow
	SendQueueBytes  int     // bytes queued for one connection before it is dropped as too slow

	PingInterval time.Duration // how often the hub pings each connection
	IdleTimeout  time.Duration // a connection silent this long (no frame, no pong) is closed
	JoinTimeout  time.Duration // a connection that has not joined a room by then is closed
	WriteTimeout time.Duration // a write blocked this long closes the connection

	HistoryMessages int           // messages kept per room for late joiners, in memory only
	HistoryTTL      time.Duration // age after which a kept message is dropped

	// ServerID is sent to clients in the welcome frame; the page mixes it
	// into its key derivation salt so that the same room and passphrase
	// give different keys on different servers.
	ServerID string

	Wire   Wire
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxFrameBytes, DefaultMaxFrameBytes)
	if c.Rate <= 0 {
		c.Rate = DefaultRate
	}
	def(&c.Burst, DefaultBurst)
	def(&c.MaxConns, DefaultMaxConns)
	def(&c.MaxConnsPerPeer, DefaultMaxConnsPerPeer)
	def(&c.MaxRooms, DefaultMaxRooms)
	def(&c.MaxMembers, DefaultMaxMembers)
	def(&c.SendQueue, DefaultSendQueue)
	def(&c.SendQueueBytes, DefaultSendQueueBytes)
	defDur(&c.PingInterval, DefaultPingInterval)
	defDur(&c.IdleTimeout, DefaultIdleTimeout)
	defDur(&c.JoinTimeout, DefaultJoinTimeout)
	defDur(&c.WriteTimeout, DefaultWriteTimeout)
	defDur(&c.HistoryTTL, DefaultHistoryTTL)
	if c.HistoryMessages < 0 {
		c.HistoryMessages = 0
	}
	if c.Wire == nil {
		c.Wire = rawWire{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Wire encodes frames for the transport. Each method returns a new slice
// that the hub shares, unchanged, among every receiver of the frame.
type Wire interface {
	Text(payload []byte) []byte           // a complete text message
	Ping() []byte                         // a keep-alive the client answers
	Close(code int, reason string) []byte // the last frame of a connection
}

// rawWire writes payloads as they are, each followed by a newline; it is
// the Wire of a zero Config, for tests and tools.
type rawWire struct{}

func (rawWire) Text(p []byte) []byte {
	b := make([]byte, len(p)+1)
	copy(b, p)
	b[len(p)] = '\n'
	return b
}
func (rawWire) Ping() []byte { return []byte("ping\n") }
func (rawWire) Close(code int, reason string) []byte {
	return []byte("close " + strconv.Itoa(code) + " " + reason + "\n")
}

// Conn is one client's transport.
type Conn interface {
	// Write writes frames already encoded by the Wire. The hub calls it
	// from one goroutine at a time; it may block.
	Write(p []byte) (int, error)
	// Close closes the transport at once, unblocking Write and the
	// transport's reader. It must be safe to call concurrently with Write
	// and more than once.
	Close() error
}

// A GracefulCloser is a Conn that can end a connection without losing what
// was just written: for TCP, closing a socket while the client is still
// sending makes the kernel answer with a reset, which can destroy the
// close frame on its way. CloseGracefully shuts down the writing side and
// makes the transport's reader give up after a short while; the reader
// then ends the session, which closes the transport.
type GracefulCloser interface {
	CloseGracefully()
}

// ErrClosed is returned by Open once the hub has stopped.
var ErrClosed = errors.New("hub: closed")

// Hub is the set of rooms and live sessions. Create it with New, run it with
// Run, and hand it connections with Open.
type Hub struct {
	cfg   Config
	log   *slog.Logger
	epoch time.Time

	mu       sync.Mutex
	rooms    map[string]*room
	sessions map[*Session]struct{}
	peers    map[string]int // live connections per peer
	closed   bool
	drained  chan struct{} // closed when closed and sessions is empty

	slowDropped atomic.Uint64
	rateDropped atomic.Uint64
}

// New returns a hub with cfg's limits. The hub accepts sessions at once but
// pings, times out and finally closes them only while Run runs.
func New(cfg Config) *Hub {
	cfg = cfg.withDefaults()
	return &Hub{
		cfg:      cfg,
		log:      cfg.Logger,
		epoch:    time.Now(),
		rooms:    make(map[string]*room),
		sessions: make(map[*Session]struct{}),
		peers:    make(map[string]int),
		drained:  make(chan struct{}),
	}
}

// Limits returns the hub's configuration with every default filled in.
func (h *Hub) Limits() Config { return h.cfg }

// now is monotonic nanoseconds since the hub was made.
func (h *Hub) now() int64 { return int64(time.Since(h.epoch)) }

// Run pings sessions and closes the idle, the stuck and those that never
// joined, until ctx ends. Then it closes every session with CloseGoingAway,
// waits briefly for them to flush, cuts off the rest and returns. Open fails
// with ErrClosed from then on.
func (h *Hub) Run(ctx context.Context) error {
	// Each session is pinged on its own schedule, from when it opened, so
	// a sweep pings about 1/sweepsPerPing of them: thousands of pings (and
	// thousands of pongs) at once would delay everyone's messages.
	tick := min(h.cfg.PingInterval/sweepsPerPing, min(h.cfg.IdleTimeout, h.cfg.JoinTimeout, h.cfg.WriteTimeout)/4)
	tick = max(min(tick, time.Second), 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	var batch []*Session
	for {
		select {
		case <-ctx.Done():
			h.shutdown()
			return nil
		case <-t.C:
			batch = h.sweep(batch[:0])
		}
	}
}

func (h *Hub) snapshot(dst []*Session) []*Session {
	h.mu.Lock()
	for s := range h.sessions {
		dst = append(dst, s)
	}
	h.mu.Unlock()
	return dst
}

func (h *Hub) sweep(batch []*Session) []*Session {
	batch = h.snapshot(batch)
	now := h.now()
	ping := int64(h.cfg.PingInterval)
	for _, s := range batch {
		if ws := s.writeStart.Load(); ws != 0 && now-ws > int64(h.cfg.WriteTimeout) {
			s.abort()
			continue
		}
		if now-s.lastRead.Load() > int64(h.cfg.IdleTimeout) {
			s.abort()
			continue
		}
		if !s.joined.Load() && now-s.opened > int64(h.cfg.JoinTimeout) {
			s.fail(ClosePolicy, CodeJoinTimeout, "no join within "+h.cfg.JoinTimeout.String(), 0)
			continue
		}
		if now-s.lastPing >= ping {
			s.lastPing = now
			s.push(h.cfg.Wire.Ping())
		}
	}
	clear(batch)
	return batch
}

func (h *Hub) shutdown() {
	h.mu.Lock()
	h.closed = true
	if len(h.sessions) == 0 {
		close(h.drained)
	}
	h.mu.Unlock()
	all := h.snapshot(nil)
	for _, s := range all {
		s.fail(CloseGoingAway, CodeShuttingDown, "the server is shutting down", 0)
	}
	t := time.NewTimer(shutdownGrace)
	defer t.Stop()
	select {
	case <-h.drained:
		return
	case <-t.C:
	}
	for _, s := range h.snapshot(nil) {
		s.abort()
	}
	t.Reset(shutdownGrace)
	select {
	case <-h.drained:
	case <-t.C:
		h.log.Error("hub: sessions still open after shutdown", "count", h.Stats().Sessions)
	}
}

// Open starts a session on conn for a client from peer, an opaque key that
// per-peer limits count by (a remote address, a Tor circuit). The caller
// must then pass every frame it reads to Session.Receive and call
// Session.End once when it stops reading.
//
// When a limit refuses the connection, Open still returns a session: it
// sends the client an error frame and a close frame and ends itself.
func (h *Hub) Open(conn Conn, peer string) *Session {
	s := &Session{h: h, conn: conn, peer: peer}
	s.opened = h.now()
	s.lastRead.Store(s.opened)
	s.lastPing = s.opened
	h.mu.Lock()
	switch {
	case h.closed:
		h.mu.Unlock()
		s.fail(CloseGoingAway, CodeShuttingDown, "the server is shutting down", 0)
		return s
	case len(h.sessions) >= h.cfg.MaxConns:
		h.mu.Unlock()
		s.fail(CloseTryAgainLater, CodeServerFull, "the server has "+strconv.Itoa(h.cfg.MaxConns)+" connections; try again later", 0)
		return s
	case h.peers[peer] >= h.cfg.MaxConnsPerPeer:
		h.mu.Unlock()
		s.fail(ClosePolicy, CodeTooManyConns, "too many connections from one place ("+strconv.Itoa(h.cfg.MaxConnsPerPeer)+")", 0)
		return s
	}
	h.sessions[s] = struct{}{}
	h.peers[peer]++
	s.counted = true
	h.mu.Unlock()
	return s
}

// Sessions returns the number of live sessions; it is cheaper than Stats.
func (h *Hub) Sessions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

// Stats is a snapshot of what the hub holds.
type Stats struct {
	Sessions int // live connections
	Peers    int // distinct peers with live connections
	Rooms    int // rooms that exist
	Names    int // member names held, over all rooms
	History  int // messages kept for late joiners, over all rooms

	SlowDropped uint64 // connections dropped because they fell too far behind
	RateDropped uint64 // frames dropped for exceeding the rate
}

// Stats reports the hub's current state.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := Stats{
		Sessions:    len(h.sessions),
		Peers:       len(h.peers),
		Rooms:       len(h.rooms),
		SlowDropped: h.slowDropped.Load(),
		RateDropped: h.rateDropped.Load(),
	}
	for _, r := range h.rooms {
		r.mu.Lock()
		st.Names += len(r.byName)
		st.History += r.histLen
		r.mu.Unlock()
	}
	return st
}
