package hub

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestBulkFramesNotKept: a file's chunk (msg with "bulk": true) reaches
// every member present, with its sender's sid and name, but has no seq,
// gets no sent and is not kept: a member who comes back gets the chat it
// missed, not the files (they would push chat out of the room's kept
// frames).
func TestBulkFramesNotKept(t *testing.T) {
	h, _ := testHub(t, Config{})
	room := roomID(7)
	cs, ws := room3(t, h, room)
	a, b, c := cs[0], cs[1], cs[2]
	c.drop()
	a.expect("away")
	b.expect("away")
	b.send(`{"v":2,"type":"msg","body":%q,"bulk":true,"id":9}`, body64("chunk"))
	b.msg(body64("text"))
	got := a.frames()
	if len(got) != 2 || got[0]["bulk"] != true || got[0]["seq"] != nil || got[0].str("from") != "b" || got[0].str("sid") != ws[1].str("sid") ||
		got[1]["bulk"] != nil || got[1].num("seq") != 1 {
		t.Fatalf("a got %v", got)
	}
	if f := b.frames(); len(f) != 0 {
		t.Fatalf("the bulk sender got %v: want no sent", f)
	}
	c2 := dial(t, h, "peer2")
	c2.send(`{"v":2,"type":"join","room":%q,"name":"c","resume":%q,"since":0}`, room, ws[2].str("resume"))
	_, old := c2.welcome()
	if len(old) != 1 || old[0].str("body") != body64("text") {
		t.Fatalf("catch-up %v: want the text only", old)
	}
	if st := h.Stats(); st.History != 1 {
		t.Fatalf("kept %d frames, want 1", st.History)
	}
	a.expect("back")
	// bulk must be a boolean.
	a.send(`{"v":2,"type":"msg","body":%q,"bulk":1}`, body64("x"))
	if e := a.expectError(codeBadFrame); !strings.Contains(e.str("message"), "bulk") {
		t.Fatalf("error %v", e)
	}
}

// TestByteRate: a connection that sends more bytes than the byte rate
// allows (beyond its burst of 4 frames' worth) has frames dropped with
// rate_limited, however few frames; after a while at the rate it sends
// again. The limits announce the byte rate and the largest file.
func TestByteRate(t *testing.T) {
	h, clk := testHub(t, Config{ByteRate: 1 << 10, MaxFrameBytes: 4 << 10, Burst: 1000, Rate: 1000})
	room := roomID(8)
	a := dial(t, h, "p1")
	w, _ := a.join(room, "a")
	lim, _ := w["limits"].(map[string]any)
	if lim["bytes"] != float64(1<<10) || lim["file"] != float64(DefaultMaxFileBytes) {
		t.Fatalf("limits %v", lim)
	}
	b := dial(t, h, "p2")
	b.join(room, "b")
	a.expect("join")
	big := body64(strings.Repeat("x", 3000)) // a frame of about 4 KiB
	for range 6 {
		b.msg(big)
	}
	if got := len(a.frames()); got != 4 {
		t.Fatalf("%d frames of 6 got through; the burst is 4 frames' worth", got)
	}
	b.expectError(codeRateLimited)
	clk.advance(5 * time.Second) // 5 KiB at 1 KiB/s
	b.msg(big)
	if f := a.expect("msg")[0]; f.str("body") != big {
		t.Fatalf("after waiting: %v", f)
	}
}

// TestBulkHeldNotDropped: a file's chunks that reach the hub faster than
// the byte rate (they bunched up on their way) are held until the rate
// allows them, not dropped: every one reaches the room, in order, nobody is
// told of a rate or closed, and the sender's reader waited as long as the
// rate says. A text frame over the rate is still dropped.
func TestBulkHeldNotDropped(t *testing.T) {
	h, clk := testHub(t, Config{ByteRate: 1 << 10, MaxFrameBytes: 4 << 10, Burst: 1000, Rate: 1000})
	room := roomID(10)
	a := dial(t, h, "p1")
	a.join(room, "a")
	b := dial(t, h, "p2")
	b.join(room, "b")
	a.expect("join")
	const n = 12
	start := clk.now()
	var bodies []string
	for i := range n {
		body := body64(fmt.Sprintf("%03d", i) + strings.Repeat("z", 3000))
		bodies = append(bodies, body)
		b.send(`{"v":2,"type":"msg","body":%q,"bulk":true}`, body)
	}
	fs := a.frames()
	if len(fs) != n {
		t.Fatalf("%d of %d chunks reached the room: [%s]", len(fs), n, types(fs))
	}
	for i, f := range fs {
		if f.typ() != "msg" || f.str("body") != bodies[i] {
			t.Fatalf("chunk %d: %v", i, f)
		}
	}
	if fs := b.frames(); len(fs) != 0 {
		t.Fatalf("the sender was told [%s]", types(fs))
	}
	// 12 frames of about 4 KiB at 1 KiB/s, the first 4 from the burst.
	waited := time.Duration(clk.now() - start)
	frame := len(fmt.Sprintf(`{"v":2,"type":"msg","body":%q,"bulk":true}`, bodies[0]))
	want := time.Duration(float64((n-4)*frame-0) / 1024 * float64(time.Second))
	if waited < want-time.Second || waited > want+time.Second {
		t.Fatalf("the reader waited %v; the rate says about %v", waited, want)
	}
	b.msg(body64(strings.Repeat("t", 3000)))
	b.expectError(codeRateLimited)
}

// TestByteFloodClosed: a client that keeps sending more bytes than the
// byte rate allows, even at a few frames a second, is closed like a frame
// flooder.
func TestByteFloodClosed(t *testing.T) {
	h, _ := testHub(t, Config{ByteRate: 1 << 10, MaxFrameBytes: 4 << 10, Burst: 10, Rate: 1000})
	a := dial(t, h, "p1")
	a.join(roomID(9), "a")
	big := body64(strings.Repeat("y", 3000))
	for range 4*10 + 8 {
		a.msg(big)
	}
	fs := a.frames()
	if types(fs) != "error error close" || fs[1].str("code") != codeRateLimited || fs[2].num("code") != closePolicy {
		t.Fatalf("got [%s] %v: want told once, then closed with 1008", types(fs), fs)
	}
}
