package hub

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"slices"
)

// Cluster is the hub's link to the other instances that serve the same
// rooms under one address (docs/protocol.md §15). internal/cluster
// implements it over NATS; the hub knows nothing of NATS. A nil
// Config.Cluster is a single instance, which asks and tells nobody.
//
// Every instance keeps, for every room of the cluster, the members of the
// others (names, session ids, away or not) beside its own, and relays and
// keeps the room's broadcast frames from all of them, numbering them in
// the order it receives them: seq is per room and per instance. An
// instance is the only authority over its own sessions; a join asks the
// others first (Claim), so that names stay unique and limits hold across
// the cluster.
type Cluster interface {
	// Claim asks every other live instance whether a join may take a
	// name in a room (or a commit its epoch, Claim.Commit), and returns
	// "" if all agree, else the error code to give the client: one an
	// instance's Hub.Vet gave, or CodeJoinRate when an instance did not
	// answer in time. The hub calls it from the joining connection's
	// reader without holding a lock; it blocks until every live instance
	// has answered, or its timeout.
	Claim(c *Claim) string
	// Publish sends an event about one of this instance's sessions or
	// frames to the other instances, which apply it with Hub.Remote in
	// the order Publish was called. The hub calls it with the room's
	// lock held: it must copy what it needs, not block, and not call the
	// hub.
	Publish(e *Event)
}

// Claim is a join that asks the other instances for a name.
type Claim struct {
	Room string
	// Key, Skel and SkelLower are the name's PRECIS comparison key and
	// its UTS #39 skeletons (as written and lower-cased).
	Key, Skel, SkelLower string
	// Token is the SHA-256 of the resume token the join carries, if
	// any, and Proof its claimProof: the instance whose session has the
	// name ends that session and lets the join take the name (a member
	// moving to another instance) only if Proof is right. Every instance
	// learns Token from join events; only the token's holder can make
	// Proof, so a claim can end nobody else's session.
	Token, Proof []byte

	// Commit, if not 0, makes this a commit's claim instead: its epoch
	// plus one. OverInst and OverSeq name the commit taken for that
	// epoch it goes over (where it was first taken, and its seq there),
	// and SID the session that sends it.
	Commit   int64
	OverInst string
	OverSeq  int64
	SID      string

	// Instance is the instance that claims, set by the Cluster on
	// receipt: of two instances claiming a commit for one epoch at once,
	// the one whose id sorts first takes it.
	Instance string
}

// claimProof proves, to the instance that made a resume token, that a
// claim for the name in room comes with the token itself: the links
// carry only the token's SHA-256 otherwise, from which this cannot be
// made.
func claimProof(token, room, key string) []byte {
	if token == "" {
		return nil
	}
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("onionchat claim\x00" + room + "\x00" + key))
	return m.Sum(nil)
}

// EventKind says what an Event is about. A Cluster carries it unchanged.
type EventKind uint8

const (
	eventJoin   EventKind = iota + 1 // a session joined (or, in a sync, exists): SID, Name, Token, Away
	eventAway                        // a session's connection dropped: SID
	eventBack                        // an away session came back: SID
	eventLeave                       // a session ended: SID
	eventMsg                         // a broadcast frame: SID, Seq (the origin's), Body, Commit, Over, Info
	eventDirect                      // a frame for one member: SID, To (its session id), Body
	eventBulk                        // a file's chunk for everyone present (not kept, no seq): SID, Body
	eventInfo                        // a room's first GroupInfo, from a page that made the group: SID, Info
)

// Event is something one instance tells the others about a room. Body is
// only valid during the call that hands it over.
type Event struct {
	Kind     EventKind
	Instance string // the instance it comes from; set by the Cluster on receipt
	Room     string
	SID      string // the session it is about
	Name     string
	Token    []byte // a join: SHA-256 of the session's resume token
	Away     bool   // a join in a sync: the session is away
	Seq      int64
	Body     []byte
	To       string // a direct frame: the recipient's session id
	Commit   int64  // a broadcast: a commit the origin took, its epoch plus one; 0 for any other frame
	Over     bool   // a broadcast: the commit went over the one taken for its epoch
	Info     []byte // a commit's broadcast, a GroupInfo: the room's sealed GroupInfo
}

// others is what the hub does about the other instances serving its rooms:
// alone (a single box) does nothing and asks nobody; linked (a
// Config.Cluster) tells them of this instance's sessions and frames, and
// asks them before a join takes a name or a commit its epoch. The rest of
// the hub calls it unconditionally.
type others interface {
	// claim asks for a join's name in room, unless it resumes a session
	// of this instance: "" or the error code for the client, and done to
	// call once the join is settled. No lock is held.
	claim(s *Session, room string, keys nameKeys, resume string) (code string, done func())
	// claimCommit asks for epoch for the commit frame id from s, which
	// goes over the commit of seq over (0: none); if another instance
	// took it, or claims it and goes first, s is told so and ok is false.
	// The caller takes the commit only if claim (nil for a single box) has
	// not yielded once it holds r.mu. done is called once the commit is
	// relayed. No lock is held.
	claimCommit(s *Session, r *room, id, epoch, over int64) (claim *pendingJoin, ok bool, done func())
	// moved reports whether old, the member of r whose name a join with
	// resume asks for, is a session of another instance that the join
	// takes over; old has then left r. h.mu and r.mu are held.
	moved(r *room, old *member, resume string) bool

	// tell tells the others that m, a session of this instance, joined,
	// went away, came back or left (eventJoin, eventAway, eventBack,
	// eventLeave). r.mu is held.
	tell(kind EventKind, r *room, m *member)
	// msg tells them of the broadcast r.seq: body from m, and for a
	// commit taken (commit, its epoch plus one) its GroupInfo and whether
	// it went over the one taken before. r.mu is held.
	msg(r *room, m *member, body []byte, commit int64, info []byte, over bool)
	// direct hands body from m to a member to who has no connection here:
	// to the instance that holds to, unless to is away. r.mu is held.
	direct(r *room, m, to *member, body []byte)
	// bulk and info hand the others a file's chunk from m, and the
	// GroupInfo of a group m's page made. r.mu is held.
	bulk(r *room, m *member, body []byte)
	info(r *room, m *member, info []byte)
}

// alone is the others of a single box: nobody.
type alone struct{}

func nothing() {}

func (alone) claim(*Session, string, nameKeys, string) (string, func()) { return "", nothing }
func (alone) claimCommit(*Session, *room, int64, int64, int64) (*pendingJoin, bool, func()) {
	return nil, true, nothing
}
func (alone) moved(*room, *member, string) bool               { return false }
func (alone) tell(EventKind, *room, *member)                  {}
func (alone) msg(*room, *member, []byte, int64, []byte, bool) {}
func (alone) direct(*room, *member, *member, []byte)          {}
func (alone) bulk(*room, *member, []byte)                     {}
func (alone) info(*room, *member, []byte)                     {}

// linked is the others over a Config.Cluster.
type linked struct {
	h       *Hub
	c       Cluster
	pending []*pendingJoin // joins and commits asking the others; guarded by h.mu
}

// far is what this instance knows of a session of another: the instance
// that holds it, and the SHA-256 of its resume token.
type far struct {
	inst  string
	token []byte
}

// on reports whether m is a session of instance inst.
func (m *member) on(inst string) bool { return m.far != nil && m.far.inst == inst }

func (l *linked) tell(kind EventKind, r *room, m *member) {
	e := &Event{Kind: kind, Room: r.id, SID: m.sid}
	if kind == eventJoin {
		e.Name, e.Token = m.name, tokenHash(m.resume)
	}
	l.c.Publish(e)
}

func (l *linked) msg(r *room, m *member, body []byte, commit int64, info []byte, over bool) {
	e := &Event{Kind: eventMsg, Room: r.id, SID: m.sid, Seq: r.seq, Body: body, Commit: commit}
	if commit > 0 {
		e.Info, e.Over = info, over
	}
	l.c.Publish(e)
}

func (l *linked) direct(r *room, m, to *member, body []byte) {
	if to.far != nil && !to.away {
		mix(m, to)
		l.c.Publish(&Event{Kind: eventDirect, Room: r.id, SID: m.sid, To: to.sid, Body: body})
	}
}

func (l *linked) bulk(r *room, m *member, body []byte) {
	if len(r.remote) > 0 {
		l.c.Publish(&Event{Kind: eventBulk, Room: r.id, SID: m.sid, Body: body})
	}
}

func (l *linked) info(r *room, m *member, info []byte) {
	l.c.Publish(&Event{Kind: eventInfo, Room: r.id, SID: m.sid, Info: info})
}

func (l *linked) moved(r *room, old *member, resume string) bool {
	if old.far == nil || !old.matches(tokenHash(resume)) {
		return false
	}
	l.h.removeFar(r, old)
	return true
}

// removeFar takes a session of another instance out of r. h.mu and r.mu
// are held.
func (h *Hub) removeFar(r *room, m *member) {
	delete(r.remote, m.sid)
	h.unlist(r, m)
}

func tokenHash(token string) []byte {
	if token == "" {
		return nil
	}
	s := sha256.Sum256([]byte(token))
	return s[:]
}

// matches reports whether the SHA-256 of a member's resume token is h.
func (m *member) matches(h []byte) bool {
	if len(h) == 0 {
		return false
	}
	if m.far == nil {
		return m.resume != "" && subtle.ConstantTimeCompare(tokenHash(m.resume), h) == 1
	}
	return len(m.far.token) > 0 && subtle.ConstantTimeCompare(m.far.token, h) == 1
}

// pendingJoin is a local join waiting for the other instances' answer
// (or a local commit, commit being its epoch plus one).
type pendingJoin struct {
	room    string
	keys    nameKeys
	commit  int64
	yielded bool // a commit's claim that let another instance's go first (vetCommit); under the room's mu
}

// claimCommit asks the other instances whether this instance may take a
// commit (frame id) for epoch: each refuses if it took a commit for that
// epoch (unless the commit goes over it, over naming its seq, as the hub
// allows once per session), and of two claiming one at once the one whose
// instance id sorts first takes it, the other yields (vetCommit), so that
// two instances never both take one and one always does. The caller takes
// the commit only if claim.yielded is still false once it holds r.mu.
// done ends the claim once the commit is relayed.
func (l *linked) claimCommit(s *Session, r *room, id, epoch, over int64) (claim *pendingJoin, ok bool, done func()) {
	h := s.h
	c := &Claim{Room: r.id, Commit: epoch + 1, SID: s.m.sid}
	r.mu.Lock()
	var seq int64
	if t := r.commits[epoch]; t != nil {
		seq = t.seq
		if over != 0 && over == t.seq {
			c.OverInst, c.OverSeq = t.inst, t.oseq
		}
	}
	r.mu.Unlock()
	claim = &pendingJoin{room: r.id, commit: c.Commit}
	done = l.addPending(claim)
	if code := l.c.Claim(c); code != "" {
		s.push(h.conflictFrame(id, epoch, seq))
		return claim, false, done
	}
	return claim, true, done
}

// addPending counts p as pending (Vet sees it) until done is called.
func (l *linked) addPending(p *pendingJoin) (done func()) {
	h := l.h
	h.mu.Lock()
	l.pending = append(l.pending, p)
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		if i := slices.Index(l.pending, p); i >= 0 {
			l.pending = slices.Delete(l.pending, i, i+1)
		}
		h.mu.Unlock()
	}
}

// vetCommit answers another instance's claim for a commit, this
// instance's own claims being pending. h.mu is held.
//
// A claim of this instance for the same epoch, still pending, decides:
// the instance whose id sorts first takes the epoch. This one refuses a
// claim from one that sorts after it; it lets one that sorts before it
// through, and yields: it will not take its own (which that instance
// refuses anyway, unless it had answered before it claimed). Either way
// exactly one of the two takes a commit for the epoch, where refusing
// both would leave two pages that retry at the same pace refused for
// ever.
func (h *Hub) vetCommit(c *Claim, pending []*pendingJoin) string {
	r := h.rooms[c.Room]
	if r != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
	}
	for _, p := range pending {
		if p.room == c.Room && p.commit == c.Commit {
			if c.Instance == "" || h.cfg.Instance < c.Instance {
				return codeCommitConflict
			}
			if r != nil { // else the claim's session has left: it takes nothing
				p.yielded = true // under r.mu, where Session.commit reads it
			}
		}
	}
	if r == nil {
		return ""
	}
	t := r.commits[c.Commit-1]
	if t == nil {
		return ""
	}
	if c.OverSeq != 0 && c.OverInst == t.inst && c.OverSeq == t.oseq && !slices.Contains(t.over, c.SID) {
		return ""
	}
	return codeCommitConflict
}

// claim asks the other instances for a new session's name in room. The
// join is pending meanwhile: Vet counts it, so that two instances never
// both give out a name or the last place in a room. A resume of this
// instance's own session asks nobody.
func (l *linked) claim(s *Session, room string, keys nameKeys, resume string) (code string, done func()) {
	h := s.h
	if h.localResume(room, keys.key, resume) {
		return "", nothing
	}
	done = l.addPending(&pendingJoin{room: room, keys: keys})
	code = l.c.Claim(&Claim{Room: room, Key: keys.key, Skel: keys.skel, SkelLower: keys.skelLower,
		Token: tokenHash(resume), Proof: claimProof(resume, room, keys.key)})
	return code, done
}

// localResume reports whether a join's name and token are those of a
// session of this instance: that is a resume, which asks nobody.
func (h *Hub) localResume(room, key, resume string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[room]
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.byKey[key]
	return m != nil && m.far == nil && sameToken(resume, m.resume)
}

// Vet answers another instance's Claim: "" if this instance has no
// session and no pending join with that name or one that looks like it in
// the room, and the room is not full; else the error code. A session of
// this instance with the name whose resume token matches the claim's ends
// here (its connection gets replaced, close 4000), and the name goes to
// the claim.
func (h *Hub) Vet(c *Claim) string {
	keys := nameKeys{key: c.Key, skel: c.Skel, skelLower: c.SkelLower}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ""
	}
	var claims []*pendingJoin // this instance's own, asking the others
	if l, ok := h.others.(*linked); ok {
		claims = l.pending
	}
	if c.Commit > 0 {
		return h.vetCommit(c, claims)
	}
	pending := 0
	for _, p := range claims {
		if p.room != c.Room || p.commit != 0 {
			continue
		}
		pending++
		switch {
		case p.keys.key == keys.key:
			return CodeNameTaken
		case p.keys.confusable(keys):
			return codeNameConfusable
		}
	}
	r := h.rooms[c.Room]
	if r == nil {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.byKey[keys.key]; old != nil {
		if !old.matches(c.Token) {
			return CodeNameTaken
		}
		if old.far == nil {
			if !hmac.Equal(c.Proof, claimProof(old.resume, c.Room, keys.key)) {
				return CodeNameTaken // the token's hash, not the token: not the member
			}
			if conn := old.conn; conn != nil {
				h.uncount(conn)
				conn.fail(closeReplaced, codeReplaced, "this session continues on a newer connection", 0)
			}
			h.removeMember(r, old)
		}
	}
	for _, m := range r.members {
		if m.keys.key != keys.key && keys.confusable(m.keys) {
			return codeNameConfusable
		}
	}
	members := len(r.members)
	if old := r.byKey[keys.key]; old != nil {
		members-- // a remote session the claim takes over
	}
	if members+pending >= h.cfg.MaxMembers {
		return codeRoomFull
	}
	return ""
}

// Remote applies an event from another instance: its members join, go
// away, come back and leave in this instance's rooms, its broadcast
// frames are relayed to this instance's members, numbered and kept here,
// and its direct frames reach their recipient. The Cluster calls it in the
// order each instance published.
func (h *Hub) Remote(e *Event) {
	if e.Instance == "" || e.Room == "" {
		return
	}
	now := h.now()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	r := h.rooms[e.Room]
	if r == nil {
		if e.Kind != eventJoin || !validRoomID(e.Room) {
			h.mu.Unlock()
			return
		}
		r = newRoom(e.Room)
		h.rooms[e.Room] = r
	}
	r.mu.Lock()
	if e.Kind == eventJoin {
		h.remoteJoin(r, e)
		r.mu.Unlock()
		h.mu.Unlock()
		return
	}
	m := r.remote[e.SID]
	if e.Kind == eventLeave {
		if m != nil && m.on(e.Instance) {
			h.removeFar(r, m)
		}
		r.mu.Unlock()
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()
	trim := r.remoteEvent(h, e, m, now)
	r.mu.Unlock()
	if trim {
		h.trimKept()
	}
}

// remoteEvent applies an event about member m (nil if unknown) of
// another instance, and reports whether a frame was kept. r.mu is held.
func (r *room) remoteEvent(h *Hub, e *Event, m *member, now int64) (kept bool) {
	if e.Kind == eventDirect {
		if m != nil && m.on(e.Instance) && len(e.Body) > 0 && validBase64(e.Body) {
			for _, o := range r.members {
				if o.sid == e.To && o.conn != nil { // only this instance's sessions have a conn
					mix(m, o)
					o.conn.push(h.directFrame(m, o, e.Body))
				}
			}
		}
		return false
	}
	if m == nil || !m.on(e.Instance) {
		return false
	}
	switch e.Kind {
	case eventAway:
		if !m.away {
			m.away = true
			r.event(h, "away", m)
		}
	case eventBack:
		if m.away {
			m.away = false
			r.event(h, "back", m)
		}
	case eventBulk:
		if len(e.Body) > 0 && validBase64(e.Body) {
			r.pushAll(h.bulkFrame(m, e.Body), nil)
		}
	case eventInfo:
		if r.info == nil && len(e.Info) > 0 && validBase64(e.Info) {
			r.adoptInfo(h, m, e.Info)
		}
	case eventMsg:
		if len(e.Body) == 0 || !validBase64(e.Body) || e.Commit < 0 || (e.Commit > 0 && (len(e.Info) == 0 || !validBase64(e.Info))) {
			return false
		}
		r.seq++
		frame := h.msgFrame(r.seq, m, e.Body, e.Commit)
		for _, o := range r.members {
			if o.far == nil {
				mix(m, o)
				if o.conn != nil {
					o.conn.push(frame)
				}
			}
		}
		r.keep(h, m, e.Body, now, e.Commit)
		if e.Commit > 0 {
			r.take(e.Commit-1, r.seq, e.Instance, e.Seq, m.sid, e.Over)
			r.setInfo(h, e.Info)
		}
		return true
	}
	return false
}

// remoteJoin adds another instance's session to r, or updates it (a
// sync after the instance was first seen). h.mu and r.mu are held.
func (h *Hub) remoteJoin(r *room, e *Event) {
	if m := r.remote[e.SID]; m != nil {
		if m.on(e.Instance) && m.away != e.Away {
			m.away = e.Away
			r.event(h, map[bool]string{true: "away", false: "back"}[e.Away], m)
		}
		return
	}
	name, err := prepareName(e.Name)
	if err != nil || name != e.Name || e.SID == "" {
		return
	}
	m := &member{room: r, sid: e.SID, name: name, keys: keysOf(name), far: &far{inst: e.Instance, token: slices.Clone(e.Token)}, away: e.Away}
	if r.remote == nil {
		r.remote = make(map[string]*member)
	}
	r.remote[m.sid] = m
	r.members = append(r.members, m)
	if old := r.byKey[m.keys.key]; old == nil || old.far != nil {
		r.byKey[m.keys.key] = m
	}
	h.noteAlone(r)
	r.event(h, "join", m)
}

// PeerGone forgets an instance that left or stopped answering: its
// sessions leave every room (this instance's members are told).
func (h *Hub) PeerGone(inst string) {
	h.mu.Lock()
	rooms := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		rooms = append(rooms, r)
	}
	for _, r := range rooms {
		r.mu.Lock()
		for _, m := range slices.Clone(r.members) {
			if m.on(inst) {
				h.removeFar(r, m)
			}
		}
		r.mu.Unlock()
	}
	h.mu.Unlock()
}

// Members returns a join Event for every session of this instance, away
// ones included, for an instance that has just appeared.
func (h *Hub) Members() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Event
	for _, r := range h.rooms {
		r.mu.Lock()
		for _, m := range r.members {
			if m.far == nil {
				out = append(out, Event{Kind: eventJoin, Room: r.id, SID: m.sid, Name: m.name, Token: tokenHash(m.resume), Away: m.away})
			}
		}
		r.mu.Unlock()
	}
	return out
}

// Sync makes this instance's copy of another instance's sessions what
// that instance says it holds (its Members): sessions it no longer has
// leave, new ones join, and away flags are set. The Cluster calls it when
// it first hears of an instance, and when it missed some of its events.
func (h *Hub) Sync(inst string, members []Event) {
	have := make(map[string]bool, len(members))
	for i := range members {
		e := members[i]
		e.Kind, e.Instance = eventJoin, inst
		have[e.Room+"\x00"+e.SID] = true
		h.Remote(&e)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.rooms {
		r.mu.Lock()
		for _, m := range slices.Clone(r.members) {
			if m.on(inst) && !have[r.id+"\x00"+m.sid] {
				h.removeFar(r, m)
			}
		}
		r.mu.Unlock()
	}
}
