package hub

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestServerFrameFirst: every connection gets the server frame first, with
// the server id and the limits, refused ones included.
func TestServerFrameFirst(t *testing.T) {
	h, _ := testHub(t, Config{ServerID: "lan:abc", MaxConnsPerPeer: 1})
	a := dial(t, h, "p")
	f := a.expect("server")[0]
	lim, _ := f["limits"].(map[string]any)
	if f.str("server") != "lan:abc" || lim == nil || lim["frame"] != float64(DefaultMaxFrameBytes) || lim["rate"] != float64(DefaultRate) ||
		lim["burst"] != float64(DefaultBurst) || lim["members"] != float64(DefaultMaxMembers) ||
		lim["ping"] != float64(DefaultPingInterval.Milliseconds()) || lim["window"] != float64(DefaultResumeWindow.Milliseconds()) {
		t.Fatalf("server frame %v", f)
	}
	b := dial(t, h, "p") // over MaxConnsPerPeer
	fs := b.expect("server", "error", "close")
	if fs[1].str("code") != codeTooManyConns || fs[2].num("code") != closePolicy {
		t.Fatalf("refused connection got %v", fs)
	}
	a.leave()
	b.s.End()
}

// TestOlderPageTold: a page of protocol version 1 is told to reload.
func TestOlderPageTold(t *testing.T) {
	h, _ := testHub(t, Config{})
	c := dial(t, h, "p")
	c.frames()
	for _, f := range []string{
		`{"v":1,"type":"join","room":"r","name":"a"}`,
		`{"type":"join","room":"r","name":"a"}`,
		`{"v":3,"type":"ping"}`,
	} {
		c.send("%s", f)
		e := c.expectError(codeBadVersion)
		if e.str("message") != "this page is an older version of onionchat: reload the page" {
			t.Fatalf("%s: told %q", f, e.str("message"))
		}
	}
	c.send(`{"v":2,"type":"dance"}`)
	c.expectError(codeUnknownType)
	c.send(`{"v":2,"type":"msg","body":"aGk="}`)
	c.expectError(codeNotJoined)
	c.send(`{"v":2,"type":"ack"}`) // gone with the relay's receipts
	c.expectError(codeUnknownType)
	c.send(`{"v":2,"type":"ping","id":7}`)
	if f := c.expect("pong")[0]; f.num("id") != 7 {
		t.Fatalf("pong %v", f)
	}
	c.leave()
}

// TestRoomIDs: a room is named by 22 characters of base64url, nothing else.
func TestRoomIDs(t *testing.T) {
	h, _ := testHub(t, Config{JoinBurst: 100})
	c := dial(t, h, "p")
	c.frames()
	for _, id := range []string{"", "r", "kitchen", strings.Repeat("A", 21), strings.Repeat("A", 23),
		strings.Repeat("A", 21) + "+", strings.Repeat("A", 21) + "/", strings.Repeat("A", 20) + "==", strings.Repeat("A", 21) + " ",
		strings.Repeat("é", 11)} {
		c.joinErr(id, "a", codeBadRoom)
	}
	w, _ := c.join("q0F3Zk1pT2xXbHlSVkE2Tg", "a")
	if w.str("room") != "q0F3Zk1pT2xXbHlSVkE2Tg" {
		t.Fatalf("welcome %v", w)
	}
	c.leave()
}

// TestJoinLeaveMembers: joins, the member list with session ids, messages
// with seq and sender, and leave events.
func TestJoinLeaveMembers(t *testing.T) {
	h, _ := testHub(t, Config{})
	room := roomID(1)
	a, b := dial(t, h, "p1"), dial(t, h, "p2")
	wa, _ := a.join(room, " Alice ")
	if wa.str("you") != "Alice" || len(wa.str("sid")) != 22 || wa.str("resume") == "" || wa.num("seq") != 0 ||
		wa.num("catchup") != 0 || wa.num("gap") != 0 || wa["resumed"] != nil {
		t.Fatalf("welcome %v", wa)
	}
	wb, _ := b.join(room, "bob")
	members, _ := wb["members"].([]any)
	if len(members) != 2 || fmt.Sprint(members[0]) != fmt.Sprint(map[string]any{"name": "Alice", "sid": wa.str("sid")}) ||
		fmt.Sprint(members[1]) != fmt.Sprint(map[string]any{"name": "bob", "sid": wb.str("sid")}) {
		t.Fatalf("members %v", members)
	}
	if wa.str("sid") == wb.str("sid") || wa.str("resume") == wb.str("resume") {
		t.Fatal("two sessions share an id or a token")
	}
	if j := a.expect("join")[0]; j.str("name") != "bob" || j.str("sid") != wb.str("sid") {
		t.Fatalf("join event %v", j)
	}
	b.msgID(body64("hi"), 5)
	if m := a.expect("msg")[0]; m.num("seq") != 1 || m.str("sid") != wb.str("sid") || m.str("from") != "bob" || m.str("body") != body64("hi") || m["old"] != nil {
		t.Fatalf("msg %v", m)
	}
	if s := b.expect("sent")[0]; s.num("id") != 5 || s.num("seq") != 1 || s.num("to") != 1 {
		t.Fatalf("sent %v", s)
	}
	// A direct frame: no seq, not kept, only to its recipient.
	a.send(`{"v":2,"type":"msg","body":%q,"to":"BOB"}`, body64("psst"))
	if m := b.expect("msg")[0]; m["seq"] != nil || m.str("to") != "bob" || m.str("from") != "Alice" || m.str("sid") != wa.str("sid") {
		t.Fatalf("direct msg %v", m)
	}
	a.send(`{"v":2,"type":"msg","body":%q,"to":"carol","id":3}`, body64("psst"))
	if e := a.expectError(codeNoSuchMember); e.num("ref") != 3 {
		t.Fatalf("error %v", e)
	}
	a.send(`{"v":2,"type":"msg","body":%q,"to":"alice"}`, body64("me"))
	a.expectError(codeNoSuchMember)
	a.send(`{"v":2,"type":"msg","body":"not base64!"}`)
	a.expectError(codeBadBody)
	a.send("%s", joinFrame(room, "again"))
	a.expectError(codeAlreadyJoined)
	if st := h.Stats(); st.History != 1 || st.Names != 2 || st.Rooms != 1 {
		t.Fatalf("stats %v", st)
	}
	b.leave()
	if l := a.expect("leave")[0]; l.str("name") != "bob" || l.str("sid") != wb.str("sid") {
		t.Fatalf("leave event %v", l)
	}
	a.leave()
	checkEmpty(t, h)
}

// TestLookAlikes: with Alice and "bob smith" in a room, each of these
// names is refused, so none can sit beside them looking the same.
func TestLookAlikes(t *testing.T) {
	h, _ := testHub(t, Config{JoinBurst: 100})
	room := roomID(2)
	a := dial(t, h, "p1")
	a.join(room, "Alice")
	b := dial(t, h, "p2")
	b.join(room, "bob smith")
	a.frames()
	e := dial(t, h, "p3")
	e.frames()
	for _, tc := range []struct{ name, code string }{
		{"Alice", CodeNameTaken},
		{"alice", CodeNameTaken},
		{"ALICE ", CodeNameTaken},
		{"\uff21\uff4c\uff49\uff43\uff45", CodeNameTaken}, // fullwidth
		{"bob  smith", CodeNameTaken},
		{"bob\u00a0smith", CodeNameTaken},
		{"Alice\u034f", codeBadName},
		{"Alice\ufe0f", codeBadName},
		{"Al\u0456ce", codeBadName},      // Cyrillic і beside Latin
		{"\u0410lice", codeBadName},      // Cyrillic А beside Latin
		{"Alice\u3164", codeBadName},     // Hangul filler
		{"\u3164", codeBadName},          // Hangul filler alone
		{"\u115fAlice", codeBadName},     // Hangul choseong filler
		{"Alice\u2800", codeBadName},     // braille blank
		{"Alice\U000E0100", codeBadName}, // variation selector
		{"\u202eecilA", codeBadName},     // right-to-left override
		{"Al\u200dice", codeBadName},     // zero-width joiner
		{"AIice", codeNameConfusable},    // capital I
		{"A1ice", codeNameConfusable},    // digit one
		{"aIice", codeNameConfusable},
		{"bob srnith", codeNameConfusable},
	} {
		f := e.joinErr(room, tc.name, tc.code)
		if tc.code == codeBadName && f.str("message") == "" {
			t.Errorf("%+q: refused without saying why", tc.name)
		}
	}
	if got := types(a.frames()); got != "" {
		t.Fatalf("the members saw [%s]", got)
	}
	// Look-alikes of away members are refused too, and a name is free
	// again once its session has left.
	b.drop()
	e.joinErr(room, "bob smith", CodeNameTaken)
	e.joinErr(room, "bob srnith", codeNameConfusable)
	a.leave()
	w, _ := e.join(room, "Alice")
	if w.str("you") != "Alice" {
		t.Fatalf("welcome %v", w)
	}
	e.leave()
}

// TestJoinRatePerPeer: a peer's joins, failed ones included, are limited
// over all its connections, and reconnecting does not reset the
// allowance; it is forgotten once refilled.
func TestJoinRatePerPeer(t *testing.T) {
	h, clk := testHub(t, Config{JoinRate: 1, JoinBurst: 5})
	c := dial(t, h, "guesser")
	c.frames()
	for range 5 {
		c.joinErr("bad", "a", codeBadRoom) // failed joins count
	}
	c.joinErr(roomID(3), "a", CodeJoinRate)
	c.leave()
	d := dial(t, h, "guesser") // a new connection from the same peer
	d.joinErr(roomID(3), "a", CodeJoinRate)
	other := dial(t, h, "friend") // another peer is not held back
	other.join(roomID(3), "friend")
	clk.advance(time.Second)
	d.join(roomID(3), "a")
	h.mu.Lock()
	n := len(h.joins)
	h.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d join allowances kept, want 2", n)
	}
	clk.advance(10 * time.Second)
	h.sweep(nil)
	h.mu.Lock()
	n = len(h.joins)
	h.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d join allowances kept after refilling, want 0", n)
	}
	d.leave()
	other.leave()
}

// room3 starts a room with members a, b and c, each from its own peer, and
// returns them with their welcomes.
func room3(t *testing.T, h *Hub, room string) ([]*client, []frame) {
	var cs []*client
	var ws []frame
	for i, name := range []string{"a", "b", "c"} {
		c := dial(t, h, fmt.Sprint("peer", i))
		w, _ := c.join(room, name)
		cs, ws = append(cs, c), append(ws, w)
	}
	for _, c := range cs {
		c.frames()
	}
	return cs, ws
}

// TestAwayBackCatchUp: a member whose connection drops is away; it comes
// back with its token and gets every frame after since, in order, once,
// before any live frame.
func TestAwayBackCatchUp(t *testing.T) {
	h, clk := testHub(t, Config{})
	room := roomID(4)
	cs, ws := room3(t, h, room)
	a, b, c := cs[0], cs[1], cs[2]
	for i := range 3 {
		b.msg(body64(fmt.Sprint("m", i)))
	}
	for _, o := range []*client{a, c} {
		if got := seqs(o.frames()); !slices.Equal(got, []int64{1, 2, 3}) {
			t.Fatalf("got %v", got)
		}
	}
	a.drop()
	for _, o := range []*client{b, c} {
		if f := o.expect("away")[0]; f.str("name") != "a" || f.str("sid") != ws[0].str("sid") {
			t.Fatalf("away event %v", f)
		}
	}
	if st := h.Stats(); st.Away != 1 || st.Names != 3 || st.Sessions != 2 {
		t.Fatalf("stats %+v", st)
	}
	// While a is away: c's broadcasts are kept for it.
	c.msgID(body64("m3"), 1)
	c.msg(body64("m4"))
	if s := c.expect("sent")[0]; s.num("seq") != 4 {
		t.Fatalf("sent %v", s)
	}
	// A late joiner sees a as away.
	d := dial(t, h, "peer9")
	wd, _ := d.join(room, "d")
	if ms := fmt.Sprint(wd["members"]); !strings.Contains(ms, "away:true name:a") {
		t.Fatalf("members %s", ms)
	}
	clk.advance(DefaultResumeWindow - time.Second)
	h.sweep(nil)
	a2 := dial(t, h, "peer0")
	a2.send(`{"v":2,"type":"join","room":%q,"name":"A","resume":%q,"since":3}`, room, ws[0].str("resume"))
	w, old := a2.welcome()
	if w["resumed"] != true || w.str("sid") != ws[0].str("sid") || w.str("you") != "a" || w.str("resume") != ws[0].str("resume") ||
		w.num("seq") != 5 || w.num("catchup") != 2 || w.num("gap") != 0 {
		t.Fatalf("welcome %v", w)
	}
	if len(old) != 2 || old[0].num("seq") != 4 || old[1].num("seq") != 5 || old[0]["old"] != true || old[0].str("from") != "c" ||
		old[0].str("sid") != ws[2].str("sid") || old[1].str("body") != body64("m4") {
		t.Fatalf("catch-up %v", old)
	}
	for _, o := range []*client{b, c, d} {
		if f := o.frames(); !strings.HasSuffix(types(f), "back") || f[len(f)-1].str("sid") != ws[0].str("sid") {
			t.Fatalf("got %v, want back", f)
		}
	}
	b.msg(body64("m5"))
	if f := a2.expect("msg")[0]; f.num("seq") != 6 || f["old"] != nil {
		t.Fatalf("live frame %v", f)
	}
	if st := h.Stats(); st.Away != 0 || st.Names != 4 {
		t.Fatalf("stats %+v", st)
	}
	for _, o := range []*client{a2, b, c, d} {
		o.leave()
	}
	a.frames()
}

// TestAwayThenLeave: an away session that does not come back within the
// window leaves; its token then takes nothing back.
func TestAwayThenLeave(t *testing.T) {
	h, clk := testHub(t, Config{ResumeWindow: time.Minute})
	room := roomID(5)
	cs, ws := room3(t, h, room)
	a, b, c := cs[0], cs[1], cs[2]
	a.drop()
	b.expect("away")
	clk.advance(time.Minute)
	h.sweep(nil)
	b.expect() // not yet: the window is a minute
	clk.advance(time.Millisecond)
	h.sweep(nil)
	if f := b.expect("leave")[0]; f.str("sid") != ws[0].str("sid") {
		t.Fatalf("leave %v", f)
	}
	if st := h.Stats(); st.Away != 0 || st.Names != 2 {
		t.Fatalf("stats %+v", st)
	}
	a2 := dial(t, h, "peer0")
	a2.send(`{"v":2,"type":"join","room":%q,"name":"a","resume":%q,"since":0}`, room, ws[0].str("resume"))
	w, _ := a2.welcome()
	if w["resumed"] != nil || w.str("sid") == ws[0].str("sid") || w.str("resume") == ws[0].str("resume") {
		t.Fatalf("welcome %v: a new session, not the old one", w)
	}
	// A client that closes, or that the hub closes for flooding, leaves
	// at once.
	c.leave()
	b.expect("join", "leave")
	a2.frames()
	for range DefaultBurst*(floodFactor+1) + 1 {
		a2.send(`{"v":2,"type":"ping"}`)
	}
	a2.s.End()
	if fs := b.frames(); types(fs) != "leave" {
		t.Fatalf("after a flood: [%s]", types(fs))
	}
	if st := h.Stats(); st.Away != 0 || st.Names != 1 {
		t.Fatalf("stats %+v", st)
	}
	b.leave()
	a.frames()
}

// TestNewSessionGetsKeptFrames: a new session receives every frame the
// room keeps, named while their sender is in the room.
func TestNewSessionGetsKeptFrames(t *testing.T) {
	h, _ := testHub(t, Config{})
	room := roomID(6)
	cs, ws := room3(t, h, room)
	for i := range 3 {
		cs[1].msg(body64(fmt.Sprint("m", i)))
	}
	d := dial(t, h, "peer-d")
	w, old := d.join(room, "d")
	if w.num("catchup") != 3 || w.num("seq") != 3 || w.num("gap") != 0 || !slices.Equal(seqs(old), []int64{1, 2, 3}) {
		t.Fatalf("welcome %v, catch-up %v", w, old)
	}
	for i, f := range old {
		if f["old"] != true || f.str("from") != "b" || f.str("sid") != ws[1].str("sid") || f.str("body") != body64(fmt.Sprint("m", i)) {
			t.Fatalf("catch-up frame %v", f)
		}
	}
	cs[1].leave()
	e := dial(t, h, "peer-e")
	_, old = e.join(room, "e")
	if !slices.Equal(seqs(old), []int64{1, 2, 3}) || old[0]["from"] != nil || old[0].str("sid") != ws[1].str("sid") {
		t.Fatalf("catch-up after the sender left: %v", old)
	}
	for _, c := range []*client{cs[0], cs[2], d, e} {
		c.leave()
	}
}

// TestGap: a session that comes back after frames it missed were dropped
// is told how many.
func TestGap(t *testing.T) {
	h, _ := testHub(t, Config{})
	body := body64("0123456789ab")
	h.maxRoomBytes = 3 * (int64(len(body)) + keptOverhead) // three frames
	room := roomID(7)
	cs, ws := room3(t, h, room)
	cs[1].msg(body)
	cs[0].drop()
	for range 5 {
		cs[1].msg(body)
	}
	a := dial(t, h, "peer0")
	a.send(`{"v":2,"type":"join","room":%q,"name":"a","resume":%q,"since":1}`, room, ws[0].str("resume"))
	w, old := a.welcome()
	// Frames 2 and 3 are gone; 4, 5 and 6 are kept.
	if w.num("gap") != 2 || w.num("catchup") != 3 || !slices.Equal(seqs(old), []int64{4, 5, 6}) {
		t.Fatalf("welcome %v, catch-up %v", w, old)
	}
	if st := h.Stats(); st.History != 3 {
		t.Fatalf("stats %+v", st)
	}
	for _, c := range []*client{a, cs[1], cs[2]} {
		c.leave()
	}
}

// keptHub returns a hub without rate limits whose caps on kept frames
// are room and all frames of body, and what one of them costs.
func keptHub(t *testing.T, room, all int64) (h *Hub, clk *clock, body string, size int64) {
	h, clk = testHub(t, Config{Rate: 1e9, Burst: 1 << 20})
	body = body64(strings.Repeat("x", 3000))
	size = int64(len(body)) + keptOverhead
	h.maxRoomBytes = room * size
	h.maxKeptBytes = all * size
	return h, clk, body, size
}

// TestKeptCapsAndWipe: a room keeps at most maxRoomBytes, the hub at most
// maxKeptBytes, the room holding the most giving its oldest frames first,
// and a room's frames go with the room.
func TestKeptCapsAndWipe(t *testing.T) {
	h, clk, body, size := keptHub(t, 10, 15)
	r1, r2 := roomID(10), roomID(11)
	a, b := dial(t, h, "p1"), dial(t, h, "p2")
	a.join(r1, "a")
	b.join(r2, "b")
	a2, b2 := dial(t, h, "p4"), dial(t, h, "p5")
	a2.join(r1, "a2")
	b2.join(r2, "b2")
	for range 25 {
		a.msg(body)
	}
	if st := h.Stats(); st.History != 10 || st.KeptBytes != 10*size {
		t.Fatalf("one room: %+v", st)
	}
	clk.advance(time.Second)
	for range 8 {
		b.msg(body)
	}
	// 18 frames over a cap of 15: the three oldest go, all from r1.
	h.mu.Lock()
	n1, n2 := h.rooms[r1].n, h.rooms[r2].n
	h.mu.Unlock()
	if n1 != 7 || n2 != 8 || h.kept.Load() != 15*size {
		t.Fatalf("kept %d in the older room and %d in the newer, %d bytes", n1, n2, h.kept.Load())
	}
	c := dial(t, h, "p3")
	_, old := c.join(r1, "c")
	if !slices.Equal(seqs(old), []int64{19, 20, 21, 22, 23, 24, 25}) {
		t.Fatalf("catch-up %v", seqs(old))
	}
	a.leave()
	a2.leave()
	c.leave()
	if st := h.Stats(); st.Rooms != 1 || st.History != 8 || st.KeptBytes != 8*size {
		t.Fatalf("after r1 emptied: %+v", st)
	}
	b.leave()
	b2.leave()
	checkEmpty(t, h)
}

// TestKeptFramesOutsidersCannotErase: a frame its sender sent alone, with
// nobody away, is not kept (nor those before it), and a resume is told
// of no gap for it. At the hub's cap, kept frames go from the rooms that
// hold the most, and a room with an away session keeps its fair share:
// flooding rooms of one's own erases nobody else's catch-up.
func TestKeptFramesOutsidersCannotErase(t *testing.T) {
	h, _, body, size := keptHub(t, 10, 12)

	lone := dial(t, h, "lone")
	wl, _ := lone.join(roomID(40), "lone")
	for range 5 {
		lone.msg(body)
	}
	if st := h.Stats(); st.History != 0 {
		t.Fatalf("a lone sender's frames kept: %+v", st)
	}
	lone.drop()
	l2 := dial(t, h, "lone")
	l2.send(`{"v":2,"type":"join","room":%q,"name":"lone","resume":%q,"since":0}`, roomID(40), wl.str("resume"))
	if w, old := l2.welcome(); w.num("gap") != 0 || len(old) != 0 {
		t.Fatalf("the lone sender's resume: %v %v", w, old)
	}
	l2.leave()

	a, a2 := dial(t, h, "pa"), dial(t, h, "pa2")
	a.join(roomID(41), "a")
	w2, _ := a2.join(roomID(41), "a2")
	a2.drop()
	for range 4 {
		a.msg(body) // kept for a2, away
	}
	flood := func(room int) {
		x, y := dial(t, h, fmt.Sprint("x", room)), dial(t, h, fmt.Sprint("y", room))
		x.join(roomID(room), "x")
		y.join(roomID(room), "y")
		for range 10 {
			x.msg(body)
		}
	}
	flood(42)
	flood(43)
	h.mu.Lock()
	n41, n42, n43 := h.rooms[roomID(41)].n, h.rooms[roomID(42)].n, h.rooms[roomID(43)].n
	h.mu.Unlock()
	if n41 != 4 || n42+n43 != 8 || h.kept.Load() != 12*size {
		t.Fatalf("kept %d, %d and %d frames, %d bytes: want the away member's 4 and 8 of the floods", n41, n42, n43, h.kept.Load())
	}
	b := dial(t, h, "pa2")
	b.send(`{"v":2,"type":"join","room":%q,"name":"a2","resume":%q,"since":0}`, roomID(41), w2.str("resume"))
	if w, old := b.welcome(); w.num("gap") != 0 || !slices.Equal(seqs(old), []int64{1, 2, 3, 4}) {
		t.Fatalf("resume after the floods: %v, catch-up %v", w, seqs(old))
	}
}

// TestControlFrameFlood: WebSocket pings and pongs spend the same tokens
// as text frames; a flood of them is closed with 1008.
func TestControlFrameFlood(t *testing.T) {
	h, clk := testHub(t, Config{Rate: 10, Burst: 40})
	c := dial(t, h, "p")
	c.frames()
	for i := range 40 {
		if !c.s.Control() {
			t.Fatalf("control frame %d refused within the burst", i)
		}
	}
	if c.s.Control() {
		t.Fatal("control frame over the burst allowed")
	}
	c.send(`{"v":2,"type":"ping"}`) // the same bucket
	c.expectError(codeRateLimited)
	clk.advance(time.Second) // 10 more
	for range 10 {
		if !c.s.Control() {
			t.Fatal("refill not allowed")
		}
	}
	for range 40*floodFactor - 2 { // two were dropped above
		c.s.Control()
	}
	c.expect() // dropped silently
	c.s.Control()
	c.expectClose(codeRateLimited, closePolicy)
	if c.s.Control() {
		t.Fatal("a closed connection's control frame allowed")
	}
	c.s.End()
}

// TestPacedFloodClosed: frames admitted now and then do not reset the
// flood count, so a client sending twice the rate, paced, is closed once
// 4 × Burst frames were dropped; one that lets its buckets refill starts
// afresh.
func TestPacedFloodClosed(t *testing.T) {
	h, clk := testHub(t, Config{Rate: 10, Burst: 40})
	c := dial(t, h, "p")
	c.frames()
	for range 40 {
		c.s.Control()
	}
	for range 100 {
		c.s.Control() // dropped
	}
	clk.advance(5 * time.Second) // the buckets are full again: a new count
	for range 40 {
		c.s.Control()
	}
	drops := 0
	for !c.s.closing.Load() {
		if drops > 1000 {
			t.Fatal("a client at twice the rate is never closed")
		}
		clk.advance(100 * time.Millisecond) // one frame's worth
		c.s.Control()                       // admitted
		if !c.s.Control() {
			drops++
		}
	}
	if drops != 40*floodFactor+1 {
		t.Fatalf("closed after %d frames dropped, want %d", drops, 40*floodFactor+1)
	}
	c.expectClose(codeRateLimited, closePolicy)
	c.s.End()
}

// TestAdmissionWhenFull: at MaxConns a new connection takes the place of
// the oldest that has not joined, then of the session alone the longest;
// sessions in shared rooms keep theirs. At MaxRooms a new room takes the
// place of the room alone the longest. Away sessions count.
func TestAdmissionWhenFull(t *testing.T) {
	h, clk := testHub(t, Config{MaxConns: 5, MaxRooms: 3, MaxMembers: 3, JoinBurst: 100})
	rooms := func(want int) {
		t.Helper()
		if st := h.Stats(); st.Rooms != want {
			t.Fatalf("%d rooms, want %d: %+v", st.Rooms, want, st)
		}
	}
	shared := roomID(20)
	a := dial(t, h, "a")
	a.join(shared, "a")
	b := dial(t, h, "b")
	b.join(shared, "b")
	clk.advance(time.Second)
	lone1 := dial(t, h, "l1")
	lone1.join(roomID(21), "l1")
	clk.advance(time.Second)
	lone2 := dial(t, h, "l2")
	lone2.join(roomID(22), "l2")
	idle := dial(t, h, "idle") // five: full
	idle.frames()

	n1 := dial(t, h, "n1") // takes the place of the connection that has not joined
	idle.expectClose(codeEvicted, closeTryAgainLater)
	idle.s.End()
	n1.join(shared, "n1") // three in the shared room

	n2 := dial(t, h, "n2") // takes the place of lone1, alone the longest
	lone1.expectClose(codeEvicted, closeTryAgainLater)
	lone1.s.End()
	rooms(2)
	clk.advance(time.Second)
	lone3 := dial(t, h, "l3") // takes the place of n2, which has not joined
	n2.expectClose(codeEvicted, closeTryAgainLater)
	n2.s.End()
	lone3.join(roomID(23), "l3")
	rooms(3)

	// At MaxRooms, a new room takes the place of the room alone the
	// longest: lone2's, not lone3's.
	h.cfg.MaxConns = 100
	x := dial(t, h, "x")
	x.join(roomID(24), "x")
	lone2.expectClose(codeEvicted, closeTryAgainLater)
	lone2.s.End()
	if got := types(lone3.frames()); got != "" {
		t.Fatalf("lone3 got [%s]", got)
	}
	rooms(3)
	// A join to a room with members is never refused for rooms.
	z := dial(t, h, "z")
	z.join(roomID(24), "z")
	l3b := dial(t, h, "l3b")
	l3b.join(roomID(23), "l3b")
	// Every room is shared (its members have exchanged frames): a new
	// room is refused, and at MaxConns a new connection is refused too.
	for _, c := range []*client{a, x, lone3} {
		c.msg(body64("hi"))
	}
	for _, c := range []*client{a, b, n1, x, z, lone3, l3b} {
		c.frames()
	}
	w := dial(t, h, "w")
	w.frames()
	w.joinErr(roomID(26), "w", codeTooManyRooms)
	rooms(3)
	w.join(roomID(24), "w")
	w.msg(body64("hi"))
	h.cfg.MaxConns = h.Stats().Sessions
	full := dial(t, h, "full")
	if fs := full.expect("server", "error", "close"); fs[1].str("code") != codeServerFull || fs[2].num("code") != closeTryAgainLater {
		t.Fatalf("refused with %v", fs)
	}
	full.s.End()
	// An away session makes way: a new connection comes in over
	// MaxConns, and its join takes the away session's place.
	b.drop()
	full2 := dial(t, h, "full2")
	full2.expect("server")
	h.cfg.MaxRooms = 10
	full2.join(roomID(27), "f2")
	if got := types(a.frames()); got != "away leave" {
		t.Fatalf("a got [%s], want b away, then gone", got)
	}
	for _, c := range []*client{a, n1, lone3, l3b, x, z, w, full2} {
		c.leave()
	}
	clk.advance(DefaultResumeWindow + time.Second)
	h.sweep(nil)
	checkEmpty(t, h)
	for _, c := range []*client{a, b, idle, lone1, lone2, lone3, l3b, n1, n2, x, z, w, full, full2} {
		c.frames()
	}
}

// TestReplacedConnection: taking a session back while its old connection
// is still open closes the old one with 4000; nobody sees it leave.
func TestReplacedConnection(t *testing.T) {
	h, _ := testHub(t, Config{})
	room := roomID(30)
	cs, ws := room3(t, h, room)
	a2 := dial(t, h, "peer0")
	a2.send(`{"v":2,"type":"join","room":%q,"name":"a","resume":%q}`, room, ws[0].str("resume"))
	if w, _ := a2.welcome(); w["resumed"] != true || w.str("sid") != ws[0].str("sid") {
		t.Fatalf("welcome %v", w)
	}
	cs[0].expectClose(codeReplaced, closeReplaced)
	cs[0].s.End()
	if got := types(cs[1].frames()); got != "" {
		t.Fatalf("the room saw [%s]", got)
	}
	cs[0].msg(body64("late")) // the old connection's frames go nowhere
	cs[1].msg(body64("hi"))
	if f := a2.expect("msg")[0]; f.str("from") != "b" {
		t.Fatalf("msg %v", f)
	}
	// A wrong token takes nothing.
	e := dial(t, h, "peer-e")
	e.frames()
	e.send(`{"v":2,"type":"join","room":%q,"name":"a","resume":"guess"}`, room)
	e.expectError(CodeNameTaken)
	for _, c := range []*client{a2, cs[1], cs[2], e} {
		c.leave()
	}
	checkEmpty(t, h)
}

// TestCloseFrames: a client's close frame is answered with its code; the
// session leaves at once, unless the code is 4001 (reconnecting), after
// which it is away like a dropped one and can come back.
func TestCloseFrames(t *testing.T) {
	h, _ := testHub(t, Config{})
	room := roomID(31)
	cs, ws := room3(t, h, room)
	a, b, c := cs[0], cs[1], cs[2]
	a.s.CloseFrame(closeReconnecting)
	if f := a.expect("close")[0]; f.num("code") != closeReconnecting {
		t.Fatalf("answered %v", f)
	}
	a.s.End()
	if f := c.expect("away")[0]; f.str("sid") != ws[0].str("sid") {
		t.Fatalf("after 4001: %v", f)
	}
	b.expect("away")
	b.s.CloseFrame(closeNoStatus)
	if f := b.expect("close")[0]; f.num("code") != closeNormal {
		t.Fatalf("answered %v", f)
	}
	b.s.End()
	c.expect("leave")
	a2 := dial(t, h, "peer0")
	a2.send(`{"v":2,"type":"join","room":%q,"name":"a","resume":%q,"since":0}`, room, ws[0].str("resume"))
	if w, _ := a2.welcome(); w["resumed"] != true {
		t.Fatalf("welcome %v", w)
	}
	c.expect("back")
	c.s.CloseFrame(1001) // closing the tab
	c.s.End()
	a2.expect("leave")
	a2.leave()
	checkEmpty(t, h)
}

// TestCatchUpFramesShared: sessions catching up at the same time share
// one encoding of each kept frame, and the room forgets those encodings
// once no catch-up has used them for a while; a later catch-up makes them
// again.
func TestCatchUpFramesShared(t *testing.T) {
	h, clk := testHub(t, Config{})
	room := roomID(32)
	a, x := dial(t, h, "pa"), dial(t, h, "px")
	a.join(room, "a")
	x.join(room, "x")
	for i := range 3 {
		a.msg(body64(fmt.Sprint("m", i)))
	}
	r := h.rooms[room]
	encoding := func() *byte {
		r.mu.Lock()
		defer r.mu.Unlock()
		return &r.entry(1).old[0]
	}
	b, c := dial(t, h, "pb"), dial(t, h, "pc")
	b.join(room, "b")
	same := encoding()
	c.join(room, "c")
	r.mu.Lock()
	made := r.oldMade
	r.mu.Unlock()
	if made != 3 || encoding() != same {
		t.Fatalf("%d catch-up frames made, want 3, shared by both sessions", made)
	}
	clk.advance(oldCacheIdle)
	h.sweep(nil)
	r.mu.Lock()
	made = r.oldMade
	r.mu.Unlock()
	if made != 3 {
		t.Fatalf("catch-up frames dropped too early: %d left", made)
	}
	clk.advance(time.Millisecond)
	h.sweep(nil)
	r.mu.Lock()
	made = r.oldMade
	r.mu.Unlock()
	if made != 0 || h.kept.Load() != 3*(int64(len(body64("m0")))+keptOverhead) {
		t.Fatalf("%d catch-up frames left, %d bytes kept", made, h.kept.Load())
	}
	d := dial(t, h, "pd")
	if _, old := d.join(room, "d"); !slices.Equal(seqs(old), []int64{1, 2, 3}) || old[2].str("from") != "a" {
		t.Fatalf("catch-up after the encodings were dropped: %v", old)
	}
	if encoding() == same {
		t.Fatal("the dropped encoding was reused")
	}
	for _, y := range []*client{a, x, b, c, d} {
		y.leave()
	}
}

// TestAwaySessionsCharged: the sessions one peer made, live or away, are
// bounded by twice MaxConnsPerPeer, its own oldest away session making
// way; when the hub is full, the away sessions of the peer holding the
// most go first, those that exchanged nothing with another peer's before
// any; and a member taking back its own session is never refused.
func TestAwaySessionsCharged(t *testing.T) {
	h, clk := testHub(t, Config{MaxConns: 12, MaxConnsPerPeer: 2, JoinBurst: 1000})
	for i := range 5 {
		c := dial(t, h, "x")
		c.join(roomID(100+i), "x")
		c.drop()
		clk.advance(time.Second)
	}
	h.mu.Lock()
	held := h.held["x"]
	h.mu.Unlock()
	if st := h.Stats(); held != 4 || st.Away != 4 || st.Rooms != 4 {
		t.Fatalf("peer x holds %d sessions, %d away, %d rooms: want its bound, 4", held, st.Away, st.Rooms)
	}

	// Friends a and b chat (mixed); b drops. A peer y fills the rest with
	// pairs of its own that exchange frames among themselves only.
	a, b := dial(t, h, "a"), dial(t, h, "b")
	a.join(roomID(1), "a")
	wb, _ := b.join(roomID(1), "b")
	a.msg(body64("hi"))
	b.drop()
	for i := range 2 {
		p, q := dial(t, h, "y"), dial(t, h, "y")
		p.join(roomID(200+i), "p")
		q.join(roomID(200+i), "q")
		p.msg(body64("self"))
		p.drop()
		q.drop()
	}
	// 4 (x) + a + b + 4 (y) = 10 of 12: two more fill it.
	c1, c2 := dial(t, h, "c1"), dial(t, h, "c2")
	c1.join(roomID(2), "c1")
	c2.join(roomID(3), "c2")
	if st := h.Stats(); st.Sessions+st.Away != 12 {
		t.Fatalf("%+v: want 12 places taken", st)
	}
	// b takes its own session back, the hub full.
	b2 := dial(t, h, "b")
	b2.send(`{"v":2,"type":"join","room":%q,"name":"b","resume":%q}`, roomID(1), wb.str("resume"))
	if w, _ := b2.welcome(); w["resumed"] != true {
		t.Fatalf("b's resume: %v", w)
	}
	// Newcomers take away places: x's and y's (which never exchanged a
	// frame with another peer's), x's first while it holds as many.
	awayOf := func(peer string) int {
		h.mu.Lock()
		defer h.mu.Unlock()
		n := 0
		for e := h.away.Front(); e != nil; e = e.Next() {
			if e.Value.(*member).peer == peer {
				n++
			}
		}
		return n
	}
	var newcomers []*client
	for i := range 8 {
		n := dial(t, h, fmt.Sprint("n", i))
		n.join(roomID(300+i), "n")
		newcomers = append(newcomers, n)
		if ax, ay := awayOf("x"), awayOf("y"); ax+ay != 7-i || ax < ay-1 || ay < ax-1 {
			t.Fatalf("after newcomer %d: x has %d away, y %d", i, ax, ay)
		}
	}
	if got := types(a.frames()); got != "join away back" {
		t.Fatalf("a got [%s]", got)
	}
	for _, c := range append(newcomers, a, b2, c1, c2) {
		c.leave()
	}
	checkEmpty(t, h)
}

// TestForgedClaimEndsNobody: a claim carrying a session's token hash (which
// every instance learns from join events) but not proof of the token
// itself is refused and ends nothing; the member's own claim, from another
// instance, ends the session and frees the name.
func TestForgedClaimEndsNobody(t *testing.T) {
	h, _ := testHub(t, Config{})
	room := roomID(50)
	a := dial(t, h, "pa")
	w, _ := a.join(room, "alice")
	token := w.str("resume")
	keys := keysOf("alice")
	forged := &Claim{Room: room, Key: keys.key, Skel: keys.skel, SkelLower: keys.skelLower, Token: tokenHash(token)}
	if code := h.Vet(forged); code != CodeNameTaken {
		t.Fatalf("a forged claim: %q, want %s", code, CodeNameTaken)
	}
	if st := h.Stats(); st.Names != 1 || a.conn.isClosed() {
		t.Fatalf("a forged claim ended the session: %+v", st)
	}
	forged.Proof = claimProof(token, room, keys.key)
	if code := h.Vet(forged); code != "" {
		t.Fatalf("the member's own claim: %q", code)
	}
	a.expectClose(codeReplaced, closeReplaced)
	a.s.End()
	checkEmpty(t, h)
}
