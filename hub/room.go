package hub

import (
	"container/list"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"math"
	"slices"
	"sync"
	"sync/atomic"
)

// room is a set of sessions under unique names, with the broadcast frames
// of the resume window. It exists from its first join until its last
// session ends; h.mu guards its place in h.rooms and its membership lists
// (alone), r.mu its contents. Both are held to change its members.
type room struct {
	id      string
	members []*member          // in order of joining, away ones included
	byKey   map[string]*member // by PRECIS comparison key
	remote  map[string]*member // other instances' sessions by session id (cluster.go); nil without
	seq     int64              // seq of the latest broadcast frame

	// Kept broadcast frames, a ring of n entries from head, with the
	// consecutive seqs seq-n+1 … seq. len(buf) is a power of two.
	buf   []kept
	head  int
	n     int
	bytes int64 // charged toward MaxRoomBytes

	// unneeded is the seq up to which no frame can be owed to anyone: a
	// frame sent while its sender was alone, with nobody away, is not
	// kept, and with it go those kept before. A resume is told of no gap
	// up to it.
	unneeded int64
	// awayN counts this instance's away sessions in the room; h.mu and
	// r.mu are held to change it.
	awayN int

	// frontAt is the time of the oldest kept frame (MaxInt64 with none),
	// for Hub.expire and trimKept, which read it without r.mu.
	frontAt atomic.Int64

	// Kept frames whose catch-up frame is made (shared by every session
	// that catches up meanwhile), and the last catch-up that made or used
	// them (0: none made): Hub.expire drops them oldCacheIdle after it, so
	// that they cost memory only while sessions catch up.
	oldMade     int
	lastCatchUp atomic.Int64

	alone *list.Element // in h.alone while the room has one session, alone the longest first

	// The Delivery Service of the room's group (docs/protocol.md §3.1):
	// the commit taken for each recent epoch, and the room's sealed
	// GroupInfo as the latest commit taken (or the first offer) left it.
	commits map[int64]*taken
	info    []byte

	mu sync.Mutex
}

// taken is the commit the hub took for an epoch: its seq here, where it
// was first taken (inst, that instance's Config.Instance, this one's
// included, and oseq, its seq there), and the sessions that have sent one
// over it (each may, once per epoch).
type taken struct {
	seq  int64
	inst string
	oseq int64
	over []string
}

// maxCommitEpochs bounds the epochs a room remembers its commit for: far
// more than any page lags behind, in a few hundred bytes.
const maxCommitEpochs = 64

func newRoom(id string) *room {
	r := &room{id: id, byKey: make(map[string]*member)}
	r.frontAt.Store(math.MaxInt64)
	return r
}

// member is a session of docs/protocol.md: a name in a room, with its
// session id and resume token, from its join until it leaves. Its
// connection may drop and come back (away, then back). Its fields are
// guarded by its room's mu; away and awaySince also by h.mu.
type member struct {
	room   *room
	conn   *Session // the live connection; nil while away and once gone
	sid    string
	resume string
	name   string // as prepared; cleared when the session ends
	keys   nameKeys

	// peer is the peer whose connection made the session or last took
	// it back: its sessions count toward that peer's bound (h.held).
	// since is when it joined. mixed is set once it has sent a frame to,
	// or received one from, a session of another peer (or instance):
	// until then it outranks no newcomer (docs/protocol.md §5).
	peer      string
	since     int64
	mixed     atomic.Bool
	quietElem *list.Element // in h.quiet while live; guarded by h.mu

	away      bool
	awaySince int64
	awayElem  *list.Element // in h.away

	gone   bool
	cached int // kept frames whose catch-up frame carries this name

	// far is where a session of another instance lives (cluster.go); nil
	// for this instance's. Such a session has no conn, no peer, no resume
	// and no place in h.away, h.quiet or h.held.
	far *far
}

// kept is a broadcast frame kept for catch-up.
type kept struct {
	seq  int64
	at   int64 // hub time it was relayed
	from *member
	body []byte
	size int64 // charged toward the caps

	old     []byte // the catch-up frame, made when a catch-up first needs it
	oldFrom bool   // old names the sender

	commit int64 // a commit's epoch plus one; 0 for any other frame
}

func newSID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func newToken() string {
	var b [18]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func sameToken(a, b string) bool {
	return a != "" && len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// first is the seq of the oldest kept frame (seq+1 with none).
func (r *room) first() int64 { return r.seq - int64(r.n) + 1 }

// entry returns the kept frame of a seq from first() to seq.
func (r *room) entry(seq int64) *kept {
	return &r.buf[(r.head+int(seq-r.first()))&(len(r.buf)-1)]
}

// keep adds the frame of the room's latest seq (the caller has just
// counted it in r.seq), after dropping the oldest kept frames that have
// aged out or would not leave it room within MaxRoomBytes.
func (r *room) keep(h *Hub, from *member, body []byte, now int64, commit int64) {
	size := int64(len(body)) + keptOverhead
	r.expire(h, now)
	for r.n > 0 && r.bytes+size > h.maxRoomBytes {
		r.dropOldest(h)
	}
	if r.n == len(r.buf) {
		r.resize(max(16, 2*len(r.buf)))
	}
	e := &r.buf[(r.head+r.n)&(len(r.buf)-1)]
	*e = kept{seq: r.seq, at: now, from: from, body: append([]byte(nil), body...), size: size, commit: commit}
	r.n++
	r.bytes += size
	h.kept.Add(size)
	if r.n == 1 {
		r.frontAt.Store(now)
	}
}

// gap is how many frames after since a resume can no longer be given:
// those dropped from the kept frames that someone may have needed.
func (r *room) gap(since int64) int64 {
	return max(0, r.first()-1-max(since, r.unneeded))
}

// resize moves the ring into a buffer of size entries (a power of two, at
// least r.n).
func (r *room) resize(size int) {
	buf := make([]kept, size)
	for i := range r.n {
		buf[i] = r.buf[(r.head+i)&(len(r.buf)-1)]
	}
	r.buf, r.head = buf, 0
}

// dropOldest forgets the oldest kept frame.
func (r *room) dropOldest(h *Hub) {
	e := &r.buf[r.head]
	r.dropOld(e)
	r.bytes -= e.size
	h.kept.Add(-e.size)
	*e = kept{}
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	switch {
	case r.n == 0:
		r.buf, r.head = nil, 0
		r.frontAt.Store(math.MaxInt64)
	default:
		r.frontAt.Store(r.buf[r.head].at)
		if len(r.buf) > 64 && r.n < len(r.buf)/4 {
			r.resize(len(r.buf) / 2)
		}
	}
}

// expire drops kept frames older than the resume window.
func (r *room) expire(h *Hub, now int64) {
	window := int64(h.cfg.ResumeWindow)
	for r.n > 0 && now-r.buf[r.head].at > window {
		r.dropOldest(h)
	}
}

// wipe forgets every kept frame.
func (r *room) wipe(h *Hub) {
	for r.n > 0 {
		r.dropOldest(h)
	}
}

// forget forgets everything the room holds: its kept frames, the commits
// taken and its GroupInfo. The room has no session left.
func (r *room) forget(h *Hub) {
	r.wipe(h)
	r.setInfo(h, nil)
	r.commits = nil
}

// setInfo makes a copy of info (nil: none) the room's GroupInfo, counted
// in the hub's Stats; the caller may reuse info.
func (r *room) setInfo(h *Hub, info []byte) {
	h.infoBytes.Add(int64(len(info) - len(r.info)))
	r.info = slices.Clone(info)
}

// take records the commit of seq (first taken by inst as its oseq) as the
// one taken for epoch, over the one taken before by the session sid (if
// over).
func (r *room) take(epoch, seq int64, inst string, oseq int64, sid string, over bool) {
	if r.commits == nil {
		r.commits = make(map[int64]*taken)
	}
	t := r.commits[epoch]
	if t == nil {
		t = &taken{}
		r.commits[epoch] = t
		if len(r.commits) > maxCommitEpochs {
			delete(r.commits, minKey(r.commits))
		}
	}
	t.seq, t.inst, t.oseq = seq, inst, oseq
	if over {
		t.over = append(t.over, sid)
	}
}

// mayCommit says whether the hub takes a commit for epoch from the session
// sid: the first for its epoch, or one over the commit taken (whose seq it
// names) from a session that has not gone over it before. Otherwise it
// returns the seq of the commit taken.
func (r *room) mayCommit(epoch, over int64, sid string) (ok bool, seq int64) {
	t := r.commits[epoch]
	if t == nil {
		return true, 0
	}
	if over != 0 && over == t.seq && !slices.Contains(t.over, sid) {
		return true, 0
	}
	return false, t.seq
}

func minKey(m map[int64]*taken) int64 {
	k := int64(math.MaxInt64)
	for e := range m {
		k = min(k, e)
	}
	return k
}

// oldFrame returns e's catch-up frame, made once for every session that
// catches up, naming its sender while the sender is in the room.
func (r *room) oldFrame(h *Hub, e *kept) []byte {
	if e.old == nil {
		e.old = h.oldMsgFrame(e, !e.from.gone)
		e.oldFrom = !e.from.gone
		if e.oldFrom {
			e.from.cached++
		}
		r.oldMade++
	}
	return e.old
}

// dropOld forgets e's catch-up frame; sessions that have it queued keep
// their reference until it is written.
func (r *room) dropOld(e *kept) {
	if e.old == nil {
		return
	}
	if e.oldFrom {
		e.from.cached--
	}
	e.old, e.oldFrom = nil, false
	r.oldMade--
}

// dropOlds forgets every catch-up frame made.
func (r *room) dropOlds() {
	for q := r.first(); r.oldMade > 0 && q <= r.seq; q++ {
		r.dropOld(r.entry(q))
	}
	r.lastCatchUp.Store(0)
}

// oldIdle reports whether r has catch-up frames that no catch-up has used
// for oldCacheIdle.
func (r *room) oldIdle(now int64) bool {
	at := r.lastCatchUp.Load()
	return at != 0 && now-at > int64(oldCacheIdle)
}

// catchUp queues for m's new connection s the kept frames after seq.
func (r *room) catchUp(h *Hub, s *Session, after int64, now int64) {
	if after < r.seq && r.n > 0 {
		r.lastCatchUp.Store(now)
	}
	for q := max(after+1, r.first()); q <= r.seq; q++ {
		s.pushOld(r.oldFrame(h, r.entry(q)))
	}
}

// removeMember ends a session of this instance: it leaves its room,
// everyone left is told (the other instances too), and its name is
// forgotten. The caller deals with m.conn. h.mu and r.mu are held.
func (h *Hub) removeMember(r *room, m *member) {
	if m.awayElem != nil {
		h.away.Remove(m.awayElem)
		m.awayElem = nil
		h.counted--
		r.awayN--
	}
	h.unquiet(m)
	if !m.gone {
		h.charge(m.peer, -1)
	}
	h.unlist(r, m)
	h.others.tell(eventLeave, r, m)
}

// unlist takes m out of r: everyone left is told, and its name is
// forgotten. A room left empty is wiped and forgotten. h.mu and r.mu are
// held.
func (h *Hub) unlist(r *room, m *member) {
	m.away = false
	m.conn = nil
	m.gone = true
	if r.byKey[m.keys.key] == m {
		delete(r.byKey, m.keys.key)
	}
	if i := slices.Index(r.members, m); i >= 0 {
		r.members = slices.Delete(r.members, i, i+1)
	}
	if len(r.members) < cap(r.members)/4 {
		r.members = slices.Clip(slices.Clone(r.members))
	}
	h.noteAlone(r)
	if len(r.members) == 0 {
		delete(h.rooms, r.id)
		r.forget(h)
	} else {
		r.event(h, "leave", m)
	}
	if m.cached > 0 {
		// Catch-up frames made while m was here carry its name: make them
		// again without it when needed.
		for q := r.first(); m.cached > 0 && q <= r.seq; q++ {
			if e := r.entry(q); e.from == m && e.oldFrom {
				r.dropOld(e)
			}
		}
	}
	m.name, m.keys, m.resume = "", nameKeys{}, ""
}

// charge adds n to the sessions held by peer. h.mu is held.
func (h *Hub) charge(peer string, n int) {
	if v := h.held[peer] + n; v > 0 {
		h.held[peer] = v
	} else {
		delete(h.held, peer)
	}
}

// unquiet takes m off the list of live sessions. h.mu is held.
func (h *Hub) unquiet(m *member) {
	if m.quietElem != nil {
		h.quiet.Remove(m.quietElem)
		m.quietElem = nil
	}
}

// mix records that a frame went between m and o, sessions of different
// peers (or instances) if they are. r.mu is held. mixed is only ever set,
// so it is stored only while unset: a store is a locked write, and this
// runs for every receiver of every frame.
func mix(m, o *member) {
	if o.peer != m.peer || o.far != nil || m.far != nil {
		if !m.mixed.Load() {
			m.mixed.Store(true)
		}
		if !o.mixed.Load() {
			o.mixed.Store(true)
		}
	}
}

// event tells every live session of r but m's that m joined, went away,
// came back or left.
func (r *room) event(h *Hub, typ string, m *member) {
	r.pushAll(h.eventFrame(typ, m), m)
}

// pushAll queues frame for every live session of r but except's (nil:
// nobody's). Only this instance's sessions have a conn, so the others'
// get nothing. r.mu is held.
func (r *room) pushAll(frame []byte, except *member) {
	for _, o := range r.members {
		if o != except && o.conn != nil {
			o.conn.push(frame)
		}
	}
}

// adoptInfo makes info, the GroupInfo of a group m's page made, the
// room's, and hands it to every other live session. r.mu is held.
func (r *room) adoptInfo(h *Hub, m *member, info []byte) {
	r.setInfo(h, info)
	r.pushAll(h.infoFrame(r.info), m)
}

// trimKept drops kept frames until their bytes are within maxKeptBytes:
// the oldest of the room that holds the most, so that nobody can push out
// another room's frames by flooding rooms of their own, and never taking
// a room with away sessions below a fair share of the cap (the cap over
// the rooms that keep frames) while another room can give. It takes the
// rooms' locks one at a time, so it must be called with none held.
func (h *Hub) trimKept() {
	if h.kept.Load() <= h.maxKeptBytes || !h.trimming.TryLock() {
		return
	}
	defer h.trimming.Unlock()
	for h.kept.Load() > h.maxKeptBytes {
		h.mu.Lock()
		n := 0
		for _, r := range h.rooms {
			if r.frontAt.Load() != math.MaxInt64 {
				n++
			}
		}
		fair := h.maxKeptBytes / int64(max(n, 1))
		var most, give *room
		var mostBytes, giveBytes int64
		// more: r holds more than x, or as much with older frames.
		more := func(r *room, b int64, x *room, xb int64) bool {
			return x == nil || b > xb || b == xb && r.frontAt.Load() < x.frontAt.Load()
		}
		for _, r := range h.rooms {
			r.mu.Lock()
			b, ok := r.bytes, r.n > 0 && (r.awayN == 0 || r.bytes-r.buf[r.head].size >= fair)
			r.mu.Unlock()
			if b > 0 && more(r, b, most, mostBytes) {
				most, mostBytes = r, b
			}
			if ok && more(r, b, give, giveBytes) {
				give, giveBytes = r, b
			}
		}
		h.mu.Unlock()
		if give == nil {
			give = most // every room is at its share: the cap holds all the same
		}
		if give == nil {
			return
		}
		give.mu.Lock()
		if give.n > 0 {
			give.dropOldest(h)
		}
		give.mu.Unlock()
	}
}
