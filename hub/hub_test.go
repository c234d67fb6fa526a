package hub

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// pipeConn is an in-memory transport that keeps what the hub writes.
type pipeConn struct {
	mu     sync.Mutex
	out    strings.Builder
	closed bool
}

func (c *pipeConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out.Write(p)
	return len(p), nil
}

func (c *pipeConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

func (c *pipeConn) text() string { c.mu.Lock(); defer c.mu.Unlock(); return c.out.String() }
func (c *pipeConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestRunStopsWithItsContext: the hub's sweeper stops with its context,
// every session is told the server is going away, and nothing is left
// running (goleak checks the package at the end).
func TestRunStopsWithItsContext(t *testing.T) {
	h := New(Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	c := &pipeConn{}
	s := h.Open(c, "peer")
	s.Receive([]byte(`{"v":1,"type":"join","room":"r","name":"a"}`))
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
	if st := h.Stats(); st != (Stats{}) {
		t.Fatalf("after Run: %+v", st)
	}
	if s2 := h.Open(&pipeConn{}, "p"); !s2.closing.Load() {
		t.Fatal("Open after Run accepted a session")
	}
}

// TestForgetsNamesAndRooms: once sessions end, the hub holds no room, no
// name and no peer.
func TestForgetsNamesAndRooms(t *testing.T) {
	h := New(Config{HistoryMessages: 5})
	var ss []*Session
	for i, name := range []string{"a", "b", "c"} {
		s := h.Open(&pipeConn{}, "peer")
		s.Receive([]byte(`{"v":1,"type":"join","room":"r` + string(rune('0'+i%2)) + `","name":"` + name + `"}`))
		s.Receive([]byte(`{"v":1,"type":"msg","body":"aGk="}`))
		ss = append(ss, s)
	}
	if st := h.Stats(); st.Rooms != 2 || st.Names != 3 || st.Sessions != 3 || st.History != 3 {
		t.Fatalf("stats %+v", st)
	}
	for _, s := range ss {
		s.End()
	}
	if st := h.Stats(); st != (Stats{}) {
		t.Fatalf("after every session ended: %+v", st)
	}
	// Writers started by the joins exit once their queues are written.
	waitUntil(t, "writers to finish", func() bool {
		for _, s := range ss {
			s.mu.Lock()
			w := s.writing
			s.mu.Unlock()
			if w {
				return false
			}
		}
		return true
	})
}
