package hub

import (
	"container/list"
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onionchat/onionchat/internal/setting"
)

// Defaults for the zero values of Config (WithDefaults), which
// config.example.toml documents (internal/config's tests hold the two
// together).
const (
	DefaultMaxFrameBytes = 64 << 10
	DefaultRate          = 10 // frames per second, sustained
	DefaultBurst         = 40 // frames at once
	DefaultMaxConns      = 1000
	// DefaultMaxConnsPerPeer: a Tor Browser reaches an onion site over one
	// circuit for all its tabs, and a page needs one WebSocket.
	DefaultMaxConnsPerPeer = 4
	DefaultMaxRooms        = 200
	DefaultMaxMembers      = 100
	DefaultSendQueue       = 4096    // frames waiting for one slow reader
	DefaultSendQueueBytes  = 1 << 20 // bytes waiting for one slow reader
	DefaultPingInterval    = 20 * time.Second
	DefaultIdleTimeout     = 60 * time.Second
	DefaultJoinTimeout     = 30 * time.Second
	DefaultWriteTimeout    = 20 * time.Second
	DefaultResumeWindow    = 3 * time.Minute
	DefaultJoinRate        = 1 // joins per second from one peer, sustained
	DefaultJoinBurst       = 5 // joins at once from one peer
	// DefaultByteRate: bytes per second one connection may send,
	// sustained (a picture of 5 MiB takes about 27 s); its burst is
	// byteBurstFrames frames of MaxFrameBytes. The page keeps to it, so a
	// file never trips the frame rate or starves chat text.
	DefaultByteRate = 192 << 10
	// DefaultMaxFileBytes is the largest file pages offer to send. The hub
	// announces it and cannot check it (files are ciphertext in chunks);
	// the byte rate is what bounds a sender.
	DefaultMaxFileBytes = 10 << 20
	byteBurstFrames     = 4

	// MaxRoomBytes and maxKeptBytes cap the broadcast frames kept for
	// catch-up, in one room and in the whole hub; the oldest go first. A
	// kept frame counts its body and keptOverhead bytes of bookkeeping.
	MaxRoomBytes = 1 << 20
	maxKeptBytes = 32 << 20

	// keptOverhead is what a kept frame costs beside its body: its slot in
	// the room's ring and, once a catch-up needs it, the head of its
	// encoded frame. It also bounds a room's kept frames to MaxRoomBytes /
	// keptOverhead (4096), and so what one catch-up queues.
	keptOverhead = 256

	// sweepsPerPing is how many sweeps Run makes per PingInterval (at most
	// one a second, at least one every 10 ms).
	sweepsPerPing = 16

	// floodFactor: a connection that has had more than this many times
	// Burst frames dropped since its rate buckets were last full is
	// closed with closePolicy.
	floodFactor = 4

	// sessionsPerConn bounds the sessions one peer made, live or away:
	// sessionsPerConn × MaxConnsPerPeer. Beyond it, a new session from
	// that peer ends the peer's own oldest away session.
	sessionsPerConn = 2

	// oldCacheIdle is how long a room keeps the catch-up frames it made
	// after the last catch-up that used them.
	oldCacheIdle = 10 * time.Second

	// shutdownGrace bounds how long Run waits, after its context ends, for
	// sessions to flush their close frames before it cuts them off.
	shutdownGrace = 3 * time.Second
)

// Config holds the hub's limits. Every zero value means the matching
// Default constant (WithDefaults), except ServerID (empty: none), Cluster
// (nil: this instance alone), Wire (nil: payloads are written as they
// are) and Logger (nil: silent).
//
// It is the [hub] section of the configuration file: a field's toml tag
// is its key there, Validate its range, and config.example.toml says
// the same as the Default constants.
type Config struct {
	MaxFrameBytes   int     `toml:"max_frame_bytes"`    // largest client frame; the transport enforces it, the hub announces it
	Rate            float64 `toml:"rate"`               // frames per second one connection may send, sustained (control frames too)
	Burst           int     `toml:"burst"`              // frames one connection may send at once
	MaxConns        int     `toml:"max_conns"`          // sessions in all: open connections and away sessions
	MaxConnsPerPeer int     `toml:"max_conns_per_peer"` // open connections from one peer (address or Tor circuit); its sessions, live or away, at most twice as many
	MaxRooms        int     `toml:"max_rooms"`          // rooms in all
	MaxMembers      int     `toml:"max_members"`        // sessions in one room, away ones included
	SendQueue       int     `toml:"send_queue"`         // frames queued for one connection before it is dropped as too slow
	SendQueueBytes  int     `toml:"send_queue_bytes"`   // bytes queued for one connection before it is dropped as too slow

	PingInterval time.Duration `toml:"ping_interval"` // how often the hub pings each connection
	IdleTimeout  time.Duration `toml:"idle_timeout"`  // a connection silent this long (no frame, no pong) is closed
	JoinTimeout  time.Duration `toml:"join_timeout"`  // a connection that has not joined a room by then is closed
	WriteTimeout time.Duration `toml:"write_timeout"` // a write blocked this long closes the connection

	// ResumeWindow is how long an away session keeps its place and how
	// long a room keeps its broadcast frames (in memory only) for
	// catch-up.
	ResumeWindow time.Duration `toml:"resume_window"`
	JoinRate     float64       `toml:"join_rate"`      // joins per second from one peer, failed ones included, over all its connections
	JoinBurst    int           `toml:"join_burst"`     // joins at once from one peer
	ByteRate     int           `toml:"byte_rate"`      // bytes per second one connection may send, sustained; its burst is 4 frames' worth
	MaxFileBytes int           `toml:"max_file_bytes"` // largest file pages offer (announced, for pages to keep to)

	// ServerID is sent to clients in the server and welcome frames; the
	// page mixes it into its key derivation so that the same room and
	// passphrase give different keys on different servers.
	ServerID string `toml:"-"`

	// Cluster links this hub to other instances serving the same rooms
	// (nil: this instance alone), and Instance is this instance's name
	// among them, unique for each start.
	Cluster  Cluster `toml:"-"`
	Instance string  `toml:"-"`

	Wire   Wire         `toml:"-"`
	Logger *slog.Logger `toml:"-"`
}

// WithDefaults returns c with every zero (or negative) limit at its
// Default constant: the limits New uses.
func (c Config) WithDefaults() Config {
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
	defRate := func(v *float64, d float64) {
		if !(*v > 0) {
			*v = d
		}
	}
	def(&c.MaxFrameBytes, DefaultMaxFrameBytes)
	defRate(&c.Rate, DefaultRate)
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
	defDur(&c.ResumeWindow, DefaultResumeWindow)
	defRate(&c.JoinRate, DefaultJoinRate)
	def(&c.JoinBurst, DefaultJoinBurst)
	def(&c.ByteRate, DefaultByteRate)
	def(&c.MaxFileBytes, DefaultMaxFileBytes)
	return c
}

// Validate reports the first limit out of the range an owner may set,
// as a *setting.Error naming its key. It checks the limits as they are
// given, zero included (an owner who writes 0 means none, which no
// default is); New takes any value, so tests may go below these ranges.
func (c Config) Validate() error {
	for _, r := range []struct {
		key    string
		v      int
		lo, hi int
	}{
		{"max_frame_bytes", c.MaxFrameBytes, 1 << 10, 16 << 20},
		{"burst", c.Burst, 1, 1 << 20},
		{"max_conns", c.MaxConns, 1, 1 << 24},
		{"max_conns_per_peer", c.MaxConnsPerPeer, 1, 1 << 24},
		{"max_rooms", c.MaxRooms, 1, 1 << 24},
		{"max_members", c.MaxMembers, 2, 1 << 24},
		{"send_queue", c.SendQueue, 1, 1 << 20},
		{"send_queue_bytes", c.SendQueueBytes, c.MaxFrameBytes, 1 << 30},
		{"join_burst", c.JoinBurst, 1, 1 << 20},
		{"byte_rate", c.ByteRate, 1 << 10, 1 << 30},
		{"max_file_bytes", c.MaxFileBytes, 1 << 10, 64 << 20}, // a receiving page holds a whole file in memory
	} {
		if err := setting.Range(r.key, r.v, r.lo, r.hi); err != nil {
			return err
		}
	}
	if !(c.Rate > 0) || c.Rate > 1e6 {
		return setting.Errorf("rate", "want frames per second above 0 and at most 1000000, not %v", c.Rate)
	}
	if !(c.JoinRate > 0) || c.JoinRate > 1e6 {
		return setting.Errorf("join_rate", "want joins per second above 0 and at most 1000000, not %v", c.JoinRate)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"ping_interval", c.PingInterval},
		{"idle_timeout", c.IdleTimeout},
		{"join_timeout", c.JoinTimeout},
		{"write_timeout", c.WriteTimeout},
		{"resume_window", c.ResumeWindow},
	} {
		if err := setting.Timeout(d.key, d.v); err != nil {
			return err
		}
	}
	if c.IdleTimeout <= c.PingInterval {
		return setting.Errorf("idle_timeout", "must be longer than ping_interval (%v)", c.PingInterval)
	}
	return nil
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

// Hub is the set of rooms and sessions. Create it with New, run it with
// Run, and hand it connections with Open.
type Hub struct {
	cfg   Config
	log   *slog.Logger
	epoch time.Time
	clock func() int64        // tests' time; nil: time since epoch
	sleep func(time.Duration) // tests' waiting (advancing clock); nil: time.Sleep

	// The caps on kept frames: MaxRoomBytes and maxKeptBytes, lower in
	// tests.
	maxRoomBytes, maxKeptBytes int64

	serverFrame []byte // the first frame of every connection, the same for all
	limits      []byte // the limits object of server and welcome frames

	// others is the other instances serving these rooms (cluster.go):
	// alone, which does nothing, without a Config.Cluster.
	others others

	mu       sync.Mutex
	rooms    map[string]*room
	sessions map[*Session]struct{} // open connections, until End
	peers    map[string]int        // open connections per peer
	held     map[string]int        // this instance's sessions, live or away, per peer that made or last resumed them
	joins    map[string]*bucket    // join allowance of peers that joined lately
	counted  int                   // toward MaxConns: counted connections and away sessions
	waiting  list.List             // of *Session: counted connections that have not joined, oldest first
	alone    list.List             // of *room: rooms with one session, alone the longest first
	away     list.List             // of *member: away sessions, away the longest first
	quiet    list.List             // of *member: live sessions, oldest first, some of which have exchanged frames with another peer's since (dropped lazily)
	over     int                   // connections admitted over MaxConns while as many away sessions could make way (Open)
	closed   bool
	drained  chan struct{} // closed when closed and sessions is empty

	kept      atomic.Int64 // bytes charged to kept frames, over all rooms
	infoBytes atomic.Int64 // bytes of the rooms' GroupInfos (one each, at most a frame)
	trimming  sync.Mutex   // one goroutine at a time trims to maxKeptBytes

	slowDropped atomic.Uint64
	rateDropped atomic.Uint64
}

// New returns a hub with cfg's limits. The hub accepts sessions at once but
// pings, times out and finally closes them, and ends away sessions, only
// while Run runs.
func New(cfg Config) *Hub {
	cfg = cfg.WithDefaults()
	if cfg.Wire == nil {
		cfg.Wire = rawWire{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Hub{
		cfg:          cfg,
		log:          cfg.Logger,
		epoch:        time.Now(),
		maxRoomBytes: MaxRoomBytes,
		maxKeptBytes: maxKeptBytes,
		rooms:        make(map[string]*room),
		sessions:     make(map[*Session]struct{}),
		peers:        make(map[string]int),
		held:         make(map[string]int),
		joins:        make(map[string]*bucket),
		drained:      make(chan struct{}),
	}
	h.limits = appendLimits(nil, &h.cfg)
	h.serverFrame = h.buildServer()
	h.others = alone{}
	if cfg.Cluster != nil {
		h.others = &linked{h: h, c: cfg.Cluster}
	}
	return h
}

// Limits returns the hub's configuration with every default filled in.
func (h *Hub) Limits() Config { return h.cfg }

// now is monotonic nanoseconds since the hub was made.
func (h *Hub) now() int64 {
	if h.clock != nil {
		return h.clock()
	}
	return int64(time.Since(h.epoch))
}

// Run pings sessions and closes the idle, the stuck and those that never
// joined; it ends away sessions after the resume window and drops kept
// frames as they age, until ctx ends. Then it closes every session with
// 1001 (going away), waits briefly for them to flush, cuts off the rest
// and returns, holding nothing. Open refuses every connection from then
// on (shutting_down).
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
			s.fail(closePolicy, codeJoinTimeout, "no join within "+h.cfg.JoinTimeout.String(), 0)
			continue
		}
		if now-s.lastPing >= ping {
			s.lastPing = now
			s.push(h.cfg.Wire.Ping())
		}
	}
	clear(batch)
	h.expire(now)
	return batch
}

// expire ends away sessions whose window has passed, drops kept frames
// older than the window, and forgets the join allowance of peers whose
// allowance has refilled.
func (h *Hub) expire(now int64) {
	window := int64(h.cfg.ResumeWindow)
	var rooms []*room
	h.mu.Lock()
	for e := h.away.Front(); e != nil; e = h.away.Front() {
		m := e.Value.(*member)
		if now-m.awaySince <= window {
			break
		}
		r := m.room
		r.mu.Lock()
		h.removeMember(r, m)
		r.mu.Unlock()
	}
	for peer, b := range h.joins {
		if b.refill(now, h.cfg.JoinRate, h.cfg.JoinBurst) {
			delete(h.joins, peer)
		}
	}
	for _, r := range h.rooms {
		if now-r.frontAt.Load() > window || r.oldIdle(now) {
			rooms = append(rooms, r)
		}
	}
	h.mu.Unlock()
	for _, r := range rooms {
		r.mu.Lock()
		r.expire(h, now)
		if r.oldIdle(now) {
			r.dropOlds()
		}
		r.mu.Unlock()
	}
	h.trimKept()
}

func (h *Hub) shutdown() {
	h.mu.Lock()
	h.closed = true
	for e := h.away.Front(); e != nil; e = h.away.Front() {
		m := e.Value.(*member)
		r := m.room
		r.mu.Lock()
		h.removeMember(r, m)
		r.mu.Unlock()
	}
	clear(h.joins)
	if len(h.sessions) == 0 {
		close(h.drained)
	}
	h.mu.Unlock()
	all := h.snapshot(nil)
	for _, s := range all {
		s.fail(closeGoingAway, codeShuttingDown, "the server is shutting down", 0)
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
// per-peer limits count by (a remote address, a Tor circuit), and sends
// the server frame. The caller must then pass every text frame it reads
// to Session.Receive, count every ping or pong with Session.Control,
// answer a close frame with Session.CloseFrame, call Session.ClientClosed
// when it closes the connection for the client's fault, and call
// Session.End once when it stops reading.
//
// When the hub has MaxConns sessions, the new connection takes the place
// of the oldest connection that has not joined; or, while away sessions
// could make way, it comes in over MaxConns and its join ends one (or
// takes back its own); or else it takes the place of the session alone in
// its room the longest, or of the oldest that has exchanged no frame with
// another peer's (docs/protocol.md §5). When a limit refuses the
// connection, Open still returns a session: it sends the client an error
// frame and a close frame and ends itself.
func (h *Hub) Open(conn Conn, peer string) *Session {
	s := &Session{h: h, conn: conn, peer: peer}
	s.opened = h.now()
	s.lastRead.Store(s.opened)
	s.lastPing = s.opened
	s.push(h.serverFrame)
	// refuse ends s, never listed, with an error frame and closeCode.
	refuse := func(closeCode int, code, msg string) *Session {
		h.mu.Unlock()
		s.refused.Store(true)
		s.fail(closeCode, code, msg, 0)
		return s
	}
	h.mu.Lock()
	switch {
	case h.closed:
		return refuse(closeGoingAway, codeShuttingDown, "the server is shutting down")
	case h.peers[peer] >= h.cfg.MaxConnsPerPeer:
		return refuse(closePolicy, codeTooManyConns, "too many connections from one place ("+strconv.Itoa(h.cfg.MaxConnsPerPeer)+")")
	case h.counted < h.cfg.MaxConns:
	case h.evictWaiting():
	case h.over < h.away.Len():
		s.over = true
		h.over++
	case !h.evictLive(nil):
		return refuse(closeTryAgainLater, codeServerFull, serverFullMsg(h.cfg.MaxConns))
	}
	h.sessions[s] = struct{}{}
	h.peers[peer]++
	s.listed = true
	s.counted = true
	h.counted++
	s.waiting = h.waiting.PushBack(s)
	h.mu.Unlock()
	return s
}

func serverFullMsg(n int) string {
	return "the server has " + strconv.Itoa(n) + " sessions, all in shared rooms; try again later"
}

const evictedMsg = "the server is full and gave your place to someone joining friends; try again later"

// evictWaiting ends the oldest connection that has not joined. h.mu is
// held.
func (h *Hub) evictWaiting() bool {
	e := h.waiting.Front()
	if e == nil {
		return false
	}
	s := e.Value.(*Session)
	h.uncount(s)
	s.fail(closeTryAgainLater, codeEvicted, evictedMsg, 0)
	return true
}

// evictLive ends the live session that has been alone in its room the
// longest, or else the oldest that has exchanged no frame with a session
// of another peer: neither outranks a newcomer. A session of the room
// locked (whose r.mu the caller holds) is never taken. h.mu is held.
func (h *Hub) evictLive(locked *room) bool {
	for e := h.alone.Front(); e != nil; e = e.Next() {
		if r := e.Value.(*room); r != locked {
			h.dropRoom(r)
			return true
		}
	}
	for e := h.quiet.Front(); e != nil; {
		m := e.Value.(*member)
		next := e.Next()
		if m.mixed.Load() {
			h.quiet.Remove(e) // exchanged frames since: off the list
			m.quietElem = nil
		} else if m.room != locked {
			h.dropMember(m, nil)
			return true
		}
		e = next
	}
	return false
}

// evictAway ends an away session to make a place: one that has exchanged
// no frame with another peer's first, then of the peer that holds the
// most sessions, then the one away the longest. A session in the room
// locked is taken only if others stay in it. With only set, only that
// peer's away sessions count. h.mu is held.
func (h *Hub) evictAway(locked *room, only string) bool {
	var best *member
	var bestMixed bool
	bestHeld := -1
	for e := h.away.Front(); e != nil; e = e.Next() {
		m := e.Value.(*member)
		if only != "" && m.peer != only || m.room == locked && len(locked.members) < 2 {
			continue
		}
		mixed, held := m.mixed.Load(), h.held[m.peer]
		if best == nil || bestMixed && !mixed || bestMixed == mixed && held > bestHeld {
			best, bestMixed, bestHeld = m, mixed, held
		}
	}
	if best == nil {
		return false
	}
	h.dropMember(best, locked)
	return true
}

// dropMember ends a session to make room: its connection, if live, is
// told it was evicted. locked is the room whose r.mu the caller holds
// (nil: none). h.mu is held.
func (h *Hub) dropMember(m *member, locked *room) {
	r := m.room
	if r != locked {
		r.mu.Lock()
		defer r.mu.Unlock()
	}
	c := m.conn
	h.removeMember(r, m)
	if c != nil {
		h.uncount(c)
		c.fail(closeTryAgainLater, codeEvicted, evictedMsg, 0)
	}
}

// dropRoom ends every session of a room, and with them the room. The room
// has no session of another instance: h.alone and evictRoom never take
// one. h.mu is held; r.mu is not.
func (h *Hub) dropRoom(r *room) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range slices.Clone(r.members) {
		h.dropMember(m, r)
	}
}

// evictRoom ends a room to make way for a new one, choosing among the
// rooms without sessions of other instances where no session that has
// exchanged frames with another peer's is live beside others: first
// those whose sessions are all away and have exchanged nothing, then
// those of one session (alone), then those whose sessions have exchanged
// nothing, then those all away; among them, the room with a session of
// the peer that holds the most, then the oldest. h.mu is held.
func (h *Hub) evictRoom() bool {
	var best *room
	bestClass, bestHeld, bestSince := roomKept, -1, int64(0)
	for _, r := range h.rooms {
		r.mu.Lock()
		class, held, since := h.roomClass(r)
		r.mu.Unlock()
		if class < roomKept && (best == nil || class < bestClass || class == bestClass && (held > bestHeld || held == bestHeld && since < bestSince)) {
			best, bestClass, bestHeld, bestSince = r, class, held, since
		}
	}
	if best == nil {
		return false
	}
	h.dropRoom(best)
	return true
}

// roomKept is the class of a room evictRoom never takes.
const roomKept = 4

// roomClass ranks a room for evictRoom: 0 to 3 (lower goes first) or
// roomKept; the most sessions a peer of its members holds; and when its
// first session joined. h.mu and r.mu are held.
func (h *Hub) roomClass(r *room) (class, held int, since int64) {
	if len(r.remote) > 0 || len(r.members) == 0 {
		return roomKept, 0, 0
	}
	allAway, anyMixed := true, false
	for _, m := range r.members {
		mixed := m.mixed.Load()
		if !m.away {
			allAway = false
			if mixed && len(r.members) > 1 {
				return roomKept, 0, 0 // friends chatting
			}
		}
		anyMixed = anyMixed || mixed
		held = max(held, h.held[m.peer])
	}
	switch {
	case allAway && !anyMixed:
		class = 0
	case len(r.members) == 1:
		class = 1
	case !anyMixed:
		class = 2
	default:
		class = 3
	}
	return class, held, r.members[0].since
}

// uncount stops counting a connection toward MaxConns once it is on its
// way out, evicted or replaced. h.mu is held.
func (h *Hub) uncount(s *Session) {
	if s.counted {
		s.counted = false
		h.counted--
	}
	h.unover(s)
	if s.waiting != nil {
		h.waiting.Remove(s.waiting)
		s.waiting = nil
	}
}

// unover stops counting s as admitted over MaxConns (Open) and reports
// whether it was. h.mu is held.
func (h *Hub) unover(s *Session) bool {
	if !s.over {
		return false
	}
	s.over = false
	h.over--
	return true
}

// noteAlone keeps r's place in the list of rooms with one session (of
// this instance, and none of another). h.mu is held, and r.mu.
func (h *Hub) noteAlone(r *room) {
	alone := len(r.members) == 1 && len(r.remote) == 0
	switch {
	case alone && r.alone == nil:
		r.alone = h.alone.PushBack(r)
	case !alone && r.alone != nil:
		h.alone.Remove(r.alone)
		r.alone = nil
	}
}

// A bucket is a token bucket: the join allowance of one peer.
type bucket struct {
	tokens float64
	at     int64
}

// refill adds what rate has earned since the last call and reports
// whether the bucket is full.
func (b *bucket) refill(now int64, rate float64, burst int) bool {
	b.tokens = min(float64(burst), b.tokens+float64(now-b.at)*rate/1e9)
	b.at = now
	return b.tokens >= float64(burst)
}

// allowJoin spends one of peer's joins. A peer's bucket outlives its
// connections until it has refilled (then expire forgets it), so that
// reconnecting does not reset it. h.mu is held.
func (h *Hub) allowJoin(peer string, now int64) bool {
	b := h.joins[peer]
	if b == nil {
		b = &bucket{tokens: float64(h.cfg.JoinBurst), at: now}
		h.joins[peer] = b
	}
	b.refill(now, h.cfg.JoinRate, h.cfg.JoinBurst)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Stats is a snapshot of what the hub holds. It is all zero when the hub
// holds nothing.
type Stats struct {
	Sessions  int   // open connections
	Away      int   // sessions whose connection dropped, kept for the resume window
	Peers     int   // distinct peers with open connections
	Rooms     int   // rooms that exist
	Names     int   // sessions in rooms, live or away (each holds a name)
	History   int   // broadcast frames kept for catch-up, over all rooms
	KeptBytes int64 // what they are charged toward the hub-wide cap on kept frames
	InfoBytes int64 // the rooms' GroupInfos, one each (at most a frame)

	SlowDropped uint64 // connections dropped because they fell too far behind
	RateDropped uint64 // frames dropped for exceeding the rate
}

// Stats reports the hub's current state.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := Stats{
		Sessions:    len(h.sessions),
		Away:        h.away.Len(),
		Peers:       len(h.peers),
		Rooms:       len(h.rooms),
		KeptBytes:   h.kept.Load(),
		InfoBytes:   h.infoBytes.Load(),
		SlowDropped: h.slowDropped.Load(),
		RateDropped: h.rateDropped.Load(),
	}
	for _, r := range h.rooms {
		r.mu.Lock()
		st.Names += len(r.members)
		st.History += r.n
		r.mu.Unlock()
	}
	return st
}
