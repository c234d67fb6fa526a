package hub

import (
	"bytes"
	"errors"
	"strconv"
	"time"
)

// Receive handles one text frame from the client. The hub does not keep p
// after Receive returns.
func (s *Session) Receive(p []byte) {
	h := s.h
	now := h.now()
	s.lastRead.Store(now)
	if s.closing.Load() {
		return // closed by the hub: what the client still sends goes nowhere
	}
	if !s.admit(now, p) {
		return
	}
	f, err := decodeClientFrame(p)
	if err != nil {
		var fe *frameError
		if errors.As(err, &fe) && fe.Code == codeBadEncoding {
			s.fail(closeBadData, fe.Code, fe.Msg, 0)
			return
		}
		if errors.As(err, &fe) {
			s.sendError(fe.Code, fe.Msg, 0)
		}
		return
	}
	if f.V != version {
		s.sendError(codeBadVersion, oldVersionMsg, f.ID)
		return
	}
	switch f.Type {
	case typeMsg:
		s.message(&f, now)
	case typeCommit:
		s.commit(&f, now)
	case typeInfo:
		s.info(&f)
	case typeJoin:
		s.join(&f, now)
	case typePing:
		s.push(h.pongFrame(f.ID))
	default:
		s.sendError(codeUnknownType, "unknown frame type "+strconv.Quote(f.Type), f.ID)
	}
}

// admit applies the rate limits to a text frame. A file's chunk (a bulk
// msg) over them is held, not dropped: the reader waits until the buckets
// have it, so that TCP slows the sender down to the rates. Chunks that the
// page paced but that bunched up on their way (in the browser, in tor)
// then all arrive; one dropped chunk would fail a whole file. The wait is
// at most the time the buckets take to refill one frame (a token, or
// MaxFrameBytes at ByteRate), and only this connection's reader waits.
// Whether a frame over the rates may be a chunk is a scan for its key,
// not a decode (mayBeBulk): a dropped frame costs no more than reading
// it. Any other frame over the rates is dropped as allow says.
func (s *Session) admit(now int64, p []byte) bool {
	if wait := s.shortfall(now, len(p)); wait > 0 && s.m != nil && mayBeBulk(p) {
		if !s.h.hold(s, wait) {
			return false
		}
		now = s.h.now()
	}
	return s.allow(now, len(p), true)
}

// bulkKey is how a client frame names its bulk field.
var bulkKey = []byte(`"bulk"`)

// mayBeBulk reports whether a client frame may be a file's chunk: it has
// the bulk key somewhere. A frame that merely mentions it (in a name,
// escaped) is held rather than dropped, which slows only its sender.
func mayBeBulk(p []byte) bool { return bytes.Contains(p, bulkKey) }

// shortfall is how long the session's buckets take to hold a frame of n
// bytes: 0 if they hold it now.
func (s *Session) shortfall(now int64, n int) time.Duration {
	tokens, bytes := s.buckets(now)
	wait := s.h.cfg.refillTime(tokens, bytes, n)
	if wait <= 0 {
		return 0
	}
	return time.Duration(wait*1e9) + time.Millisecond // rounding: the buckets must hold it after
}

// buckets returns the session's frame and byte buckets refilled to now,
// without spending from them.
func (s *Session) buckets(now int64) (tokens, bytes float64) {
	c := &s.h.cfg
	byteBurst := float64(byteBurstFrames * c.MaxFrameBytes)
	if s.tokenAt == 0 {
		return float64(c.Burst), byteBurst
	}
	return min(float64(c.Burst), s.tokens+float64(now-s.tokenAt)*c.Rate/1e9),
		min(byteBurst, s.byteTokens+float64(now-s.tokenAt)*float64(c.ByteRate)/1e9)
}

// refillTime is how many seconds buckets holding tokens and bytes take to
// hold one frame of n bytes; 0 or less if they hold it now.
func (c *Config) refillTime(tokens, bytes float64, n int) float64 {
	return max((1-tokens)/c.Rate, (float64(n)-bytes)/float64(c.ByteRate))
}

// hold waits d on a session's reader, in steps, and reports whether the
// session is still open after it.
func (h *Hub) hold(s *Session, d time.Duration) bool {
	if h.sleep != nil {
		h.sleep(d)
		return !s.closing.Load()
	}
	const step = 50 * time.Millisecond
	for d > 0 && !s.closing.Load() {
		time.Sleep(min(d, step))
		d -= step
	}
	return !s.closing.Load()
}

// allow spends a token from the session's frame bucket and n bytes from
// its byte bucket (ByteRate, a burst of byteBurstFrames frames). Over
// either rate, frames are dropped, text frames with a rate_limited error
// (at most one a second), and a client that goes on flooding is closed:
// one that has had floodFactor × Burst frames dropped since its buckets
// were last full. A frame admitted now and then does not reset that
// count, so a sustained excess is closed whatever its rhythm; only
// keeping under the rates until the buckets have refilled does.
func (s *Session) allow(now int64, n int, text bool) bool {
	c := &s.h.cfg
	s.tokens, s.byteTokens = s.buckets(now)
	s.tokenAt = now
	if s.tokens >= float64(c.Burst) && s.byteTokens >= float64(byteBurstFrames*c.MaxFrameBytes) {
		s.dropped = 0
	}
	if s.tokens >= 1 && s.byteTokens >= float64(n) {
		s.tokens--
		s.byteTokens -= float64(n)
		return true
	}
	s.dropped++
	s.h.rateDropped.Add(1)
	if s.dropped > floodFactor*c.Burst {
		s.fail(closePolicy, codeRateLimited, "too many frames; closing the connection", 0)
		return false
	}
	if text && (s.warned == 0 || now-s.warned >= int64(time.Second)) {
		s.warned = now
		wait := time.Duration(c.refillTime(s.tokens, s.byteTokens, n) * 1e9)
		s.sendError(codeRateLimited, "too many frames or bytes: dropped; wait "+wait.Round(time.Millisecond).String(), 0)
	}
	return false
}

func (s *Session) sendError(code, msg string, ref int64) {
	s.push(s.h.errorFrame(code, msg, ref))
}

// join handles a join frame: a new session in a room, or, with a resume
// token, a session taken back (docs/protocol.md §2, §4, §5, §7).
func (s *Session) join(f *clientFrame, now int64) {
	h := s.h
	if s.m != nil {
		s.sendError(codeAlreadyJoined, "this connection has joined a room already", f.ID)
		return
	}
	h.mu.Lock()
	ok := h.allowJoin(s.peer, now)
	h.mu.Unlock()
	if !ok {
		s.sendError(CodeJoinRate, "too many joins from one place; wait a few seconds", f.ID)
		return
	}
	if !validRoomID(f.Room) {
		s.sendError(codeBadRoom, "a room id is "+strconv.Itoa(roomIDLen)+" characters of base64url; reload the page", f.ID)
		return
	}
	if len(f.Resume) > maxResumeBytes {
		s.sendError(codeBadFrame, "resume token too long", f.ID)
		return
	}
	name, err := prepareName(f.Name)
	if err != nil {
		s.sendError(codeBadName, err.Error(), f.ID)
		return
	}
	keys := keysOf(name)
	// The other instances say first whether the name is free (a single
	// box has none to ask).
	code, done := h.others.claim(s, f.Room, keys, f.Resume)
	defer done()
	switch code {
	case "":
	case CodeJoinRate:
		s.sendError(code, "the server's other instances did not answer in time; try again in a moment", f.ID)
		return
	case codeRoomFull:
		s.sendError(code, "the room has "+strconv.Itoa(h.cfg.MaxMembers)+" members", f.ID)
		return
	case codeNameConfusable:
		s.sendError(code, "that name looks like the name of someone in this room; choose another", f.ID)
		return
	default:
		s.sendError(CodeNameTaken, "someone in this room uses that name", f.ID)
		return
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || s.closing.Load() {
		return // shutting down, or evicted meanwhile
	}
	r := h.rooms[f.Room]
	if r != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		if old := r.byKey[keys.key]; old != nil {
			switch {
			case h.others.moved(r, old, f.Resume):
				// A session of another instance moves here: it ended
				// there (Vet), and starts anew here under its name.
			case !sameToken(f.Resume, old.resume):
				s.sendError(CodeNameTaken, "someone in this room uses that name", f.ID)
				return
			default:
				s.resume(r, old, f.Since, now)
				return
			}
		}
		for _, m := range r.members {
			if keys.confusable(m.keys) {
				s.sendError(codeNameConfusable, "that name looks like the name of someone in this room; choose another", f.ID)
				return
			}
		}
		if len(r.members) >= h.cfg.MaxMembers {
			s.sendError(codeRoomFull, "the room has "+strconv.Itoa(h.cfg.MaxMembers)+" members", f.ID)
			return
		}
		if !s.makeWay(r, f.ID) {
			return
		}
	} else {
		if !s.makeWay(nil, f.ID) {
			return
		}
		if len(h.rooms) >= h.cfg.MaxRooms && !h.evictRoom() {
			s.sendError(codeTooManyRooms, "the server has "+strconv.Itoa(h.cfg.MaxRooms)+" rooms in use; try again later", f.ID)
			return
		}
		r = newRoom(f.Room)
		h.rooms[f.Room] = r
		r.mu.Lock()
		defer r.mu.Unlock()
	}
	m := &member{room: r, conn: s, sid: newSID(), resume: newToken(), name: name, keys: keys, peer: s.peer, since: now}
	r.members = append(r.members, m)
	r.byKey[keys.key] = m
	h.charge(s.peer, 1)
	h.noteAlone(r)
	s.attach(m)
	s.push(h.welcomeFrame(r, m, false, int64(r.n), 0))
	r.catchUp(h, s, 0, now)
	r.event(h, "join", m)
	h.others.tell(eventJoin, r, m)
}

// makeWay frees what a new session of s needs before it joins: within its
// peer's bound, the peer's own oldest away session ends; a connection
// admitted over MaxConns takes an away session's place (or a live one's
// that outranks no newcomer) or is refused. locked is the room joined,
// whose r.mu is held (nil for a new room). h.mu is held.
func (s *Session) makeWay(locked *room, id int64) bool {
	h := s.h
	if h.held[s.peer] >= sessionsPerConn*h.cfg.MaxConnsPerPeer && !h.evictAway(locked, s.peer) {
		s.sendError(codeTooManyConns, "too many sessions from one place ("+strconv.Itoa(sessionsPerConn*h.cfg.MaxConnsPerPeer)+")", id)
		return false
	}
	if h.unover(s) && h.counted > h.cfg.MaxConns && !h.evictAway(locked, "") && !h.evictLive(locked) {
		h.uncount(s)
		s.fail(closeTryAgainLater, codeServerFull, serverFullMsg(h.cfg.MaxConns), 0)
		return false
	}
	return true
}

// resume hands member m, found by its name and resume token, to s: a
// connection of m still open is replaced, an away m comes back. s gets
// the welcome, then the room's kept frames after since. h.mu and r.mu are
// held.
func (s *Session) resume(r *room, m *member, since, now int64) {
	h := s.h
	wasAway := m.away
	if m.away {
		h.away.Remove(m.awayElem)
		m.away, m.awayElem = false, nil
		h.counted--
		r.awayN--
	}
	if c := m.conn; c != nil {
		h.uncount(c)
		c.fail(closeReplaced, codeReplaced, "this session continues on a newer connection", 0)
	}
	h.unover(s) // the place m held while away is s's now
	if m.peer != s.peer {
		h.charge(m.peer, -1)
		h.charge(s.peer, 1)
		m.peer = s.peer
	}
	m.conn = s
	s.attach(m)
	since = min(since, r.seq)
	from := max(since+1, r.first())
	gap := r.gap(since)
	s.push(h.welcomeFrame(r, m, true, r.seq-from+1, gap))
	r.catchUp(h, s, since, now)
	if wasAway {
		r.event(h, "back", m)
		h.others.tell(eventBack, r, m)
	}
}

// attach makes m the session of s, which has joined. h.mu is held.
func (s *Session) attach(m *member) {
	s.m = m
	s.joined.Store(true)
	if !m.mixed.Load() && m.quietElem == nil {
		m.quietElem = s.h.quiet.PushBack(m)
	}
	if s.waiting != nil {
		s.h.waiting.Remove(s.waiting)
		s.waiting = nil
	}
}

func (s *Session) message(f *clientFrame, now int64) {
	h := s.h
	m := s.m
	if m == nil {
		s.sendError(codeNotJoined, "join a room first", f.ID)
		return
	}
	if len(f.Body) == 0 || !validBase64(f.Body) {
		s.sendError(codeBadBody, "body must be standard base64 with padding", f.ID)
		return
	}
	r := m.room
	if f.To != "" {
		key, ok := nameKey(f.To)
		r.mu.Lock()
		to := r.byKey[key]
		switch {
		case m.conn != s: // replaced or gone: its frames go nowhere
		case !ok || to == nil || to == m:
			s.sendError(codeNoSuchMember, "nobody of that name is in the room", f.ID)
		case to.conn != nil:
			mix(m, to)
			to.conn.push(h.directFrame(m, to, f.Body))
		default: // an away recipient gets nothing; another instance's, there
			h.others.direct(r, m, to, f.Body)
		}
		r.mu.Unlock()
		return
	}
	r.mu.Lock()
	if m.conn != s {
		r.mu.Unlock() // replaced or gone: its frames go nowhere
		return
	}
	if f.Bulk {
		// A file's chunk: to everyone present, not kept (it would push
		// chat out of the room's kept frames), no seq.
		r.pushAll(h.bulkFrame(m, f.Body), m)
		h.others.bulk(r, m, f.Body)
		r.mu.Unlock()
		return
	}
	s.broadcast(r, m, f, now, 0)
	r.mu.Unlock()
	h.trimKept()
}

// broadcast relays f's body from m to every other member of r with the
// room's next seq, keeps it for catch-up, answers s with sent if f has an
// id, and tells the other instances. commit is the epoch plus one of a
// commit the hub took, else 0. r.mu is held.
func (s *Session) broadcast(r *room, m *member, f *clientFrame, now, commit int64) {
	h := s.h
	r.seq++
	frame := h.msgFrame(r.seq, m, f.Body, commit)
	for _, o := range r.members {
		if o != m {
			mix(m, o)
			if o.conn != nil {
				o.conn.push(frame)
			}
		}
	}
	if f.ID != 0 {
		s.push(h.sentFrame(f.ID, r.seq, len(r.members)-1))
	}
	if len(r.members) == 1 {
		// Alone, and nobody away: nobody can need this frame, nor those
		// kept before it.
		r.wipe(h)
		r.unneeded = r.seq
	} else {
		r.keep(h, m, f.Body, now, commit)
	}
	h.others.msg(r, m, f.Body, commit, f.Info, f.Over != 0)
}

// commit handles a commit frame: the hub is the Delivery Service of the
// room's group (docs/protocol.md §3.1). It takes the first commit for an
// epoch, relays it as a broadcast labelled with its epoch, and keeps the
// GroupInfo it comes with as the room's; it refuses any other commit for
// that epoch with commit_conflict, but one sent over the commit taken
// (naming its seq) by a session that has not done so before for the
// epoch: its sender found the commit taken invalid. The hub reads nothing
// of the commit itself.
func (s *Session) commit(f *clientFrame, now int64) {
	m := s.m
	switch {
	case m == nil:
		s.sendError(codeNotJoined, "join a room first", f.ID)
		return
	case !f.HasEpoch:
		s.sendError(codeBadFrame, `a commit needs "epoch"`, f.ID)
		return
	case len(f.Body) == 0 || !validBase64(f.Body) || len(f.Info) == 0 || !validBase64(f.Info):
		s.sendError(codeBadBody, "a commit needs its body and the GroupInfo after it, in standard base64 with padding", f.ID)
		return
	}
	r := m.room
	claim, ok, done := s.h.others.claimCommit(s, r, f.ID, f.Epoch, f.Over)
	defer done()
	if !ok {
		return
	}
	r.mu.Lock()
	if m.conn != s {
		r.mu.Unlock() // replaced or gone: its frames go nowhere
		return
	}
	ok, seq := r.mayCommit(f.Epoch, f.Over, m.sid)
	if ok && claim != nil && claim.yielded {
		ok = false // another instance's claim for the epoch went first (vetCommit)
	}
	if !ok {
		r.mu.Unlock()
		s.push(s.h.conflictFrame(f.ID, f.Epoch, seq))
		return
	}
	s.broadcast(r, m, f, now, f.Epoch+1)
	r.take(f.Epoch, r.seq, s.h.cfg.Instance, r.seq, m.sid, f.Over != 0)
	r.setInfo(s.h, f.Info)
	r.mu.Unlock()
	s.h.trimKept()
}

// info handles an info frame. With a body, it is the GroupInfo of a group
// a page made (the room's first, or after a restart of the hub): kept if
// the room has none, and handed to the room's other members; if the room
// has one, the sender gets it instead. Without a body it asks for the
// room's.
func (s *Session) info(f *clientFrame) {
	h := s.h
	m := s.m
	if m == nil {
		s.sendError(codeNotJoined, "join a room first", f.ID)
		return
	}
	if len(f.Body) > 0 && !validBase64(f.Body) {
		s.sendError(codeBadBody, "a GroupInfo is standard base64 with padding", f.ID)
		return
	}
	r := m.room
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.conn != s {
		return
	}
	if len(f.Body) == 0 || r.info != nil {
		if r.info != nil {
			s.push(h.infoFrame(r.info))
		}
		return
	}
	r.adoptInfo(h, m, f.Body)
	h.others.info(r, m, f.Body)
}
