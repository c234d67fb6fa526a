package hub

import (
	"fmt"
	"strings"
	"testing"
)

func (c *client) commit(epoch int64, body, info string, id int, over int64) {
	c.t.Helper()
	o := ""
	if over != 0 {
		o = fmt.Sprintf(`,"over":%d`, over)
	}
	c.send(`{"v":2,"type":"commit","epoch":%d,"body":%q,"info":%q,"id":%d%s}`, epoch, body, info, id, o)
}

// TestDeliveryService: the hub orders a room's commits (docs/protocol.md
// §3.1): the first for an epoch is relayed to everyone (labelled with its
// epoch, kept for catch-up) and its GroupInfo becomes the room's; any
// other for that epoch is refused, but one sent over it, naming its seq,
// once per session.
func TestDeliveryService(t *testing.T) {
	h, _ := testHub(t, Config{})
	room := roomID(40)
	a, b, c := dial(t, h, "pa"), dial(t, h, "pb"), dial(t, h, "pc")
	a.join(room, "a")
	// The first member's GroupInfo: kept, and handed to whoever asks.
	a.send(`{"v":2,"type":"info","body":%q}`, body64("info 0"))
	a.expect()
	w, _ := b.join(room, "b")
	if w.str("info") != body64("info 0") {
		t.Fatalf("welcome %v: want the room's GroupInfo", w)
	}
	a.expect("join")
	// A second offer does not replace it: its sender gets the room's.
	b.send(`{"v":2,"type":"info","body":%q}`, body64("another group"))
	if f := b.expect("info")[0]; f.str("body") != body64("info 0") {
		t.Fatalf("info %v", f)
	}
	b.send(`{"v":2,"type":"info"}`)
	b.expect("info")
	c.join(room, "c")
	a.expect("join")
	b.expect("join")

	// Two commits for epoch 0: the first is taken.
	b.commit(0, body64("b's commit"), body64("info 1 of b"), 7, 0)
	a.commit(0, body64("a's commit"), body64("info 1 of a"), 3, 0)
	sent := b.expect("sent")[0]
	if sent.num("id") != 7 {
		t.Fatalf("sent %v", sent)
	}
	fs := a.frames()
	if types(fs) != "msg error" || fs[0].num("commit") != 0 || fs[0].str("body") != body64("b's commit") ||
		fs[1].str("code") != codeCommitConflict || fs[1].num("ref") != 3 || fs[1].num("seq") != sent.num("seq") {
		t.Fatalf("a got %v", fs)
	}
	if f := c.expect("msg")[0]; f.num("commit") != 0 || f.num("seq") != sent.num("seq") {
		t.Fatalf("c got %v", f)
	}
	// a found b's commit invalid: its own, over it, is taken; a second
	// time over the same commit is not.
	a.commit(0, body64("a's commit again"), body64("info 1 of a"), 4, sent.num("seq"))
	over := a.expect("sent")[0]
	b.expect("msg")
	c.expect("msg")
	a.commit(0, body64("a third"), body64("x"), 5, over.num("seq"))
	a.expectError(codeCommitConflict)
	c.commit(0, body64("over the wrong one"), body64("x"), 6, sent.num("seq"))
	c.expectError(codeCommitConflict)
	// The next epoch is open; a newcomer gets the GroupInfo of the last
	// commit taken, and the commits in its catch-up, labelled.
	c.commit(1, body64("c's commit"), body64("info 2"), 8, 0)
	c.expect("sent")
	a.expect("msg")
	b.expect("msg")
	d := dial(t, h, "pd")
	w, old := d.join(room, "d")
	if w.str("info") != body64("info 2") {
		t.Fatalf("welcome %v", w)
	}
	var labels []string
	for _, f := range old {
		labels = append(labels, fmt.Sprint(f.num("commit")))
	}
	if strings.Join(labels, " ") != "0 0 1" {
		t.Fatalf("catch-up commits %v: %v", labels, old)
	}
	// Without epoch, body or GroupInfo, a commit is refused.
	d.send(`{"v":2,"type":"commit","body":%q,"info":%q}`, body64("x"), body64("y"))
	d.expectError(codeBadFrame)
	d.send(`{"v":2,"type":"commit","epoch":2,"body":%q}`, body64("x"))
	d.expectError(codeBadBody)
	if st := h.Stats(); st.InfoBytes != int64(len(body64("info 2"))) {
		t.Fatalf("stats %+v", st)
	}
	// The room's GroupInfo and commits go with the room.
	for _, o := range []*client{a, b, c, d} {
		o.leave()
	}
	checkEmpty(t, h)
}

// TestInfoBeforeJoin: a page that has not joined can neither offer nor
// ask for a GroupInfo, nor commit.
func TestInfoBeforeJoin(t *testing.T) {
	h, _ := testHub(t, Config{})
	a := dial(t, h, "pa")
	a.frames()
	a.send(`{"v":2,"type":"info"}`)
	a.expectError(codeNotJoined)
	a.commit(0, body64("x"), body64("y"), 1, 0)
	a.expectError(codeNotJoined)
	a.leave()
}
