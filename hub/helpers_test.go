package hub

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// waitUntil polls cond; the hub's writers run in their own goroutines.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// clock is a hub's time in tests: it moves only when told.
type clock struct{ t atomic.Int64 }

func (c *clock) now() int64              { return c.t.Load() }
func (c *clock) advance(d time.Duration) { c.t.Add(int64(d)) }

// testHub returns a hub on a clock of its own; the tests call its sweep
// rather than Run, so nothing happens until they say. Unless cfg says
// otherwise, connections are never idle or late to join, so that the
// clock can jump by minutes.
func testHub(t *testing.T, cfg Config) (*Hub, *clock) {
	t.Helper()
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 1000 * time.Hour
	}
	if cfg.JoinTimeout == 0 {
		cfg.JoinTimeout = 1000 * time.Hour
	}
	h := New(cfg)
	c := &clock{}
	c.t.Store(int64(time.Hour))
	h.clock = c.now
	h.sleep = c.advance
	return h, c
}

// frame is a decoded server frame; the raw Wire's close frames become
// type "close" (with "code" and "reason").
type frame map[string]any

func (f frame) typ() string { s, _ := f["type"].(string); return s }
func (f frame) str(k string) string {
	s, _ := f[k].(string)
	return s
}
func (f frame) num(k string) int64 {
	n, ok := f[k].(float64)
	if !ok {
		return -1
	}
	return int64(n)
}

// client is a fake transport's view of one connection.
type client struct {
	t     *testing.T
	h     *Hub
	conn  *pipeConn
	s     *Session
	seen  int // bytes of output already returned by frames
	pings int // WebSocket pings the hub sent, left out of frames
}

func dial(t *testing.T, h *Hub, peer string) *client {
	t.Helper()
	c := &client{t: t, h: h, conn: &pipeConn{}}
	c.s = h.Open(c.conn, peer)
	return c
}

// send hands the hub one text frame from the client.
func (c *client) send(format string, args ...any) {
	c.s.Receive(fmt.Appendf(nil, format, args...))
}

// frames returns the frames written since the last call, once the
// session's writer has written everything queued.
func (c *client) frames() []frame {
	c.t.Helper()
	waitUntil(c.t, "the writer to finish", func() bool {
		c.s.mu.Lock()
		defer c.s.mu.Unlock()
		return !c.s.writing
	})
	out := c.conn.text()
	text := out[c.seen:]
	c.seen = len(out)
	var fs []frame
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		switch {
		case line == "":
		case line == "ping":
			c.pings++
		case strings.HasPrefix(line, "close "):
			parts := strings.SplitN(line, " ", 3)
			code, _ := strconv.Atoi(parts[1])
			fs = append(fs, frame{"type": "close", "code": float64(code), "reason": parts[2]})
		default:
			var f frame
			if err := json.Unmarshal([]byte(line), &f); err != nil {
				c.t.Fatalf("the hub wrote %q, not JSON: %v", line, err)
			}
			if f["v"] != float64(version) {
				c.t.Fatalf("frame without v %d: %s", version, line)
			}
			fs = append(fs, f)
		}
	}
	return fs
}

// types lists the types of fs, for messages and comparisons.
func types(fs []frame) string {
	var ts []string
	for _, f := range fs {
		ts = append(ts, f.typ())
	}
	return strings.Join(ts, " ")
}

// expect returns the frames since the last call, which must have exactly
// these types.
func (c *client) expect(want ...string) []frame {
	c.t.Helper()
	fs := c.frames()
	if got := types(fs); got != strings.Join(want, " ") {
		c.t.Fatalf("got frames [%s], want [%s]: %v", got, strings.Join(want, " "), fs)
	}
	return fs
}

// expectError returns the error frame that must be the only frame since
// the last call, with this code.
func (c *client) expectError(code string) frame {
	c.t.Helper()
	f := c.expect("error")[0]
	if f.str("code") != code {
		c.t.Fatalf("error %q (%s), want %q", f.str("code"), f.str("message"), code)
	}
	return f
}

// expectClose expects an error with this code, then a close frame with
// closeCode (after the server frame, if it was not read yet).
func (c *client) expectClose(code string, closeCode int) {
	c.t.Helper()
	fs := c.frames()
	if len(fs) > 0 && fs[0].typ() == "server" {
		fs = fs[1:]
	}
	if types(fs) != "error close" {
		c.t.Fatalf("got [%s] %v, want error, close", types(fs), fs)
	}
	if fs[0].str("code") != code || fs[1].num("code") != int64(closeCode) {
		c.t.Fatalf("closed with %v, %v; want %s then close %d", fs[0], fs[1], code, closeCode)
	}
}

// roomID returns a valid room id, different for each n.
func roomID(n int) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "room-%011d", n))
}

func joinFrame(room, name string) string {
	return fmt.Sprintf(`{"v":2,"type":"join","room":%q,"name":%q}`, room, name)
}

// join joins a room and returns the welcome and the catch-up frames after
// it; the server frame of a new connection is skipped.
func (c *client) join(room, name string) (frame, []frame) {
	c.t.Helper()
	c.send("%s", joinFrame(room, name))
	return c.welcome()
}

func (c *client) welcome() (frame, []frame) {
	c.t.Helper()
	fs := c.frames()
	if len(fs) > 0 && fs[0].typ() == "server" {
		fs = fs[1:]
	}
	if len(fs) == 0 || fs[0].typ() != "welcome" {
		c.t.Fatalf("got [%s] %v, want a welcome", types(fs), fs)
	}
	if n := fs[0].num("catchup"); int64(len(fs)-1) < n {
		c.t.Fatalf("welcome says %d catch-up frames, got [%s]", n, types(fs[1:]))
	}
	return fs[0], fs[1:]
}

// joinErr sends a join that must fail with code.
func (c *client) joinErr(room, name, code string) frame {
	c.t.Helper()
	c.send("%s", joinFrame(room, name))
	fs := c.frames()
	if len(fs) > 0 && fs[0].typ() == "server" {
		fs = fs[1:]
	}
	if len(fs) != 1 || fs[0].typ() != "error" || fs[0].str("code") != code {
		c.t.Fatalf("join as %+q: got %v, want error %s", name, fs, code)
	}
	return fs[0]
}

func (c *client) msg(body string) { c.send(`{"v":2,"type":"msg","body":%q}`, body) }
func (c *client) msgID(body string, id int) {
	c.send(`{"v":2,"type":"msg","body":%q,"id":%d}`, body, id)
}

// drop ends the connection as a failed transport does: no close frame.
func (c *client) drop() { c.s.End() }

// leave ends the connection as a client's close frame does.
func (c *client) leave() { c.s.ClientClosed(); c.s.End() }

// body64 is a message body: standard base64 of s.
func body64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// seqs lists the seq of each msg frame in fs.
func seqs(fs []frame) []int64 {
	var out []int64
	for _, f := range fs {
		if f.typ() == "msg" {
			out = append(out, f.num("seq"))
		}
	}
	return out
}

// checkEmpty fails unless the hub holds nothing: no session, room, name,
// kept frame or peer, and its own counts and lists agree.
func checkEmpty(t *testing.T, h *Hub) {
	t.Helper()
	if st := h.Stats(); st != (Stats{SlowDropped: st.SlowDropped, RateDropped: st.RateDropped}) {
		t.Fatalf("the hub still holds %+v", st)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counted != 0 || h.waiting.Len() != 0 || h.alone.Len() != 0 || h.away.Len() != 0 || h.kept.Load() != 0 ||
		len(h.held) != 0 || h.over != 0 || h.quiet.Len() != 0 {
		t.Fatalf("counted %d, waiting %d, alone %d, away %d, kept %d, held %v, over %d, quiet %d: want all 0",
			h.counted, h.waiting.Len(), h.alone.Len(), h.away.Len(), h.kept.Load(), h.held, h.over, h.quiet.Len())
	}
}
