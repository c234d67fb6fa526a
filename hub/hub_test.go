package hub

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestRunStopsWithItsContext: the hub's sweeper stops with its context,
// every session is told the server is going away, away sessions are
// dropped, and nothing is left running (goleak checks the package at the
// end).
func TestRunStopsWithItsContext(t *testing.T) {
	h := New(Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	c := &pipeConn{}
	s := h.Open(c, "peer")
	s.Receive([]byte(joinFrame(roomID(1), "a")))
	gone := h.Open(&pipeConn{}, "peer2")
	gone.Receive([]byte(joinFrame(roomID(1), "b")))
	gone.End() // away
	if st := h.Stats(); st.Away != 1 || st.Names != 2 {
		t.Fatalf("before shutdown: %+v", st)
	}
	go func() { // the transport's reader: it ends the session when closed
		waitUntil(t, "the transport to close", c.isClosed)
		s.End()
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if !strings.Contains(c.text(), `"code":"shutting_down"`) || !strings.Contains(c.text(), "close 1001") {
		t.Fatalf("the session was not told: %q", c.text())
	}
	checkEmpty(t, h)
	if s2 := h.Open(&pipeConn{}, "p"); !s2.closing.Load() {
		t.Fatal("Open after Run accepted a session")
	}
}

// TestForgetsNamesAndRooms: once sessions leave, the hub holds no room,
// no name, no kept frame and no peer.
func TestForgetsNamesAndRooms(t *testing.T) {
	h, _ := testHub(t, Config{})
	var cs []*client
	for i, name := range []string{"a", "b", "c"} {
		c := dial(t, h, "peer")
		c.join(roomID(i%2), name)
		c.msg(body64("hi"))
		cs = append(cs, c)
	}
	// a and b each sent alone in their room: only c's frame, which a can
	// need, is kept.
	if st := h.Stats(); st.Rooms != 2 || st.Names != 3 || st.Sessions != 3 || st.History != 1 || st.KeptBytes == 0 {
		t.Fatalf("stats %+v", st)
	}
	for _, c := range cs {
		c.leave()
	}
	checkEmpty(t, h)
	for _, c := range cs {
		c.frames() // writers started by the joins exit once their queues are written
	}
}
