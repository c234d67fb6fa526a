package web_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/onionchat/onionchat/hub"
	"github.com/onionchat/onionchat/internal/wstest"
	"github.com/onionchat/onionchat/web"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start serves a real hub and handler on a loopback port for the test.
func start(t *testing.T, cfg hub.Config) (string, *hub.Hub) {
	t.Helper()
	cfg.Wire = web.Wire{}
	h := hub.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	srv := httptest.NewServer(web.New(web.Config{Hub: h}))
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})
	return srv.URL, h
}

// waitFor polls cond until it holds, failing the test after a bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func members(f wstest.Frame) []string {
	var out []string
	for _, m := range f["members"].([]any) {
		out = append(out, m.(string))
	}
	return out
}

func TestJoinLeaveAndMemberList(t *testing.T) {
	url, h := start(t, hub.Config{})
	a := wstest.Dial(t, url)
	w := a.JoinOK("lobby", "alice")
	if got := members(w); len(got) != 1 || got[0] != "alice" || w.Str("you") != "alice" || w.Str("room") != "lobby" {
		t.Fatalf("welcome = %v", w)
	}
	b := wstest.Dial(t, url)
	w = b.JoinOK("lobby", "  bob ")
	if got := fmt.Sprint(members(w)); got != "[alice bob]" {
		t.Fatalf("bob's member list = %s, want [alice bob]", got)
	}
	if f := a.Expect("join"); f.Str("name") != "bob" {
		t.Fatalf("alice got %v, want bob's join", f)
	}
	c := wstest.Dial(t, url)
	c.JoinOK("elsewhere", "carol") // another room: alice and bob hear nothing of it
	b.Close()
	if f := a.Expect("leave"); f.Str("name") != "bob" {
		t.Fatalf("alice got %v, want bob's leave", f)
	}
	a.Close()
	c.Close()
	waitFor(t, "an empty hub", func() bool { return h.Stats() == hub.Stats{} })
}

func TestNameTaken(t *testing.T) {
	url, _ := start(t, hub.Config{})
	a := wstest.Dial(t, url)
	a.JoinOK("r", "Alice")
	b := wstest.Dial(t, url)
	for _, name := range []string{"Alice", "alice", " ALICE\t"} {
		b.Join("r", name)
		b.ExpectError(hub.CodeNameTaken)
	}
	b.Join("r", "")
	b.ExpectError(hub.CodeBadName)
	b.Join("r", strings.Repeat("x", hub.MaxNameRunes+1))
	b.ExpectError(hub.CodeBadName)
	b.Join("r", "bad\u0000name")
	b.ExpectError(hub.CodeBadName)
	b.Join("", "bob")
	b.ExpectError(hub.CodeBadRoom)
	// The same connection may try again with a free name.
	if w := b.JoinOK("r", "Alice 2"); w.Str("you") != "Alice 2" {
		t.Fatalf("welcome = %v", w)
	}
	// The same name is free in another room.
	c := wstest.Dial(t, url)
	c.JoinOK("other", "alice")
}

func TestNameFreedWhenSessionEnds(t *testing.T) {
	url, h := start(t, hub.Config{})
	a := wstest.Dial(t, url)
	a.JoinOK("r", "alice")
	a.Close()
	waitFor(t, "alice's session to end", func() bool { return h.Stats().Names == 0 })
	b := wstest.Dial(t, url)
	b.JoinOK("r", "alice")
}

func TestFanOutFiftyClientsNoLossNoDuplicates(t *testing.T) {
	const clients, perClient = 50, 20
	url, h := start(t, hub.Config{MaxConnsPerPeer: clients, MaxMembers: clients})
	cs := make([]*wstest.Client, clients)
	for i := range cs {
		cs[i] = wstest.Dial(t, url)
		cs[i].JoinOK("fan", fmt.Sprintf("m%02d", i))
	}
	// Drain the join events of later members so that every client's next
	// frames are messages.
	for i, c := range cs {
		for range clients - 1 - i {
			c.Expect("join")
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := map[string]int{}
			for n := 0; n < (clients-1)*perClient; n++ {
				f, err := c.Read(wstest.Timeout)
				if err != nil {
					errs <- fmt.Errorf("client %d after %d messages: %v", i, n, err)
					return
				}
				if f.Type() != "msg" {
					errs <- fmt.Errorf("client %d: unexpected %v", i, f)
					return
				}
				from := f.Str("from")
				var seq int
				if _, err := fmt.Sscanf(wstest.Body(f), from+" %d", &seq); err != nil || seq != next[from] {
					errs <- fmt.Errorf("client %d: from %s got %q, want sequence %d (lost, duplicated or reordered)", i, from, wstest.Body(f), next[from])
					return
				}
				next[from]++
			}
		}()
	}
	for i, c := range cs {
		go func() {
			for s := range perClient {
				c.WriteMessage(websocket.TextMessage, msgFrame(fmt.Sprintf("m%02d %d", i, s)))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := h.Stats(); st.SlowDropped != 0 || st.RateDropped != 0 {
		t.Errorf("stats = %+v, want nothing dropped", st)
	}
}

func msgFrame(body string) []byte {
	return []byte(`{"v":1,"type":"msg","body":"` + base64.StdEncoding.EncodeToString([]byte(body)) + `"}`)
}

func TestSlowReaderDroppedOthersKeepFlowing(t *testing.T) {
	const n, size = 600, 30 << 10 // 18 MB in all: more than loopback socket buffers hold
	url, h := start(t, hub.Config{Rate: 1e6, Burst: 1e6, SendQueue: 64, SendQueueBytes: 256 << 10})
	stalled := wstest.Dial(t, url)
	stalled.JoinOK("r", "stalled")
	fast := wstest.Dial(t, url)
	fast.JoinOK("r", "fast")
	sender := wstest.Dial(t, url)
	sender.JoinOK("r", "sender")
	fast.Expect("join")
	// stalled now reads nothing: its socket buffers fill, then its queue.

	got := make(chan error, 1)
	progress := make(chan int, n)
	go func() {
		for i := 0; i < n; {
			f, err := fast.Read(wstest.Timeout)
			if err != nil {
				got <- fmt.Errorf("fast reader after %d messages: %v", i, err)
				return
			}
			if f.Type() == "leave" { // the stalled reader, dropped
				continue
			}
			if b := wstest.Body(f); !strings.HasPrefix(b, fmt.Sprintf("%d ", i)) {
				got <- fmt.Errorf("fast reader: message %d is %.20q", i, b)
				return
			}
			progress <- i
			i++
		}
		got <- nil
	}()
	// The sender stays a few messages ahead of the fast reader, as a rate
	// limit would keep it: the fast reader keeps up, the stalled one not.
	pad := strings.Repeat("x", size)
	read := -1
	for i := range n {
		for i-read > 4 {
			select {
			case read = <-progress:
			case err := <-got:
				t.Fatal(err)
			}
		}
		sender.SendRaw(msgFrame(fmt.Sprintf("%d %s", i, pad)))
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if st := h.Stats(); st.SlowDropped != 1 {
		t.Fatalf("SlowDropped = %d, want 1 (the stalled reader)", st.SlowDropped)
	}
	// Once it reads again, the stalled client finds its connection cut
	// before it saw every message.
	seen := 0
	for {
		f, err := stalled.Read(wstest.Timeout)
		if err != nil {
			break
		}
		if f.Type() == "msg" {
			seen++
		}
	}
	if seen >= n {
		t.Fatalf("stalled client got all %d messages; it should have been dropped", n)
	}
}

func TestOversizedFrameClosed1009(t *testing.T) {
	url, h := start(t, hub.Config{})
	c := wstest.Dial(t, url)
	c.JoinOK("r", "big")
	c.SendRaw(make([]byte, hub.DefaultMaxFrameBytes+1))
	if code := c.ExpectClose(); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
	// A frame of exactly the limit is accepted (as a frame; it is no JSON).
	d := wstest.Dial(t, url)
	d.SendRaw([]byte(strings.Repeat(" ", hub.DefaultMaxFrameBytes)))
	d.ExpectError(hub.CodeBadFrame)
	waitFor(t, "the big sender's session to end", func() bool { return h.Stats().Names == 0 })
}

func TestFloodRateLimited(t *testing.T) {
	url, h := start(t, hub.Config{Rate: 5, Burst: 10})
	flooder := wstest.Dial(t, url)
	flooder.JoinOK("r", "flooder") // spends 1 token
	victim := wstest.Dial(t, url)
	victim.JoinOK("r", "victim")
	flooder.Expect("join")
	for i := range 30 {
		flooder.SendRaw(msgFrame(fmt.Sprint(i)))
	}
	flooder.ExpectError(hub.CodeRateLimited)
	// Only the burst got through.
	for i := range 9 {
		if f := victim.Expect("msg"); wstest.Body(f) != fmt.Sprint(i) {
			t.Fatalf("victim got %q, want %d", wstest.Body(f), i)
		}
	}
	if _, err := victim.Read(200 * time.Millisecond); err == nil {
		t.Fatal("victim got more than the burst")
	}
	if st := h.Stats(); st.RateDropped != 21 {
		t.Fatalf("RateDropped = %d, want 21", st.RateDropped)
	}
	// The victim chats on.
	victim.Msg("still here")
	if f := flooder.Expect("msg"); wstest.Body(f) != "still here" {
		t.Fatalf("got %v", f)
	}
}

func TestFloodPersistingIsClosed(t *testing.T) {
	url, _ := start(t, hub.Config{Rate: 1, Burst: 5})
	c := wstest.Dial(t, url)
	for range 100 {
		if c.WriteMessage(websocket.TextMessage, []byte(`{"v":1,"type":"ping"}`)) != nil {
			break
		}
	}
	if code := c.ExpectClose(); code != websocket.ClosePolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
}

func TestBadInputGetsErrorsServerFine(t *testing.T) {
	url, _ := start(t, hub.Config{})
	c := wstest.Dial(t, url)
	for _, tc := range []struct{ frame, code string }{
		{`{not json`, hub.CodeBadFrame},
		{`[1,2]`, hub.CodeBadFrame},
		{`{"v":1}`, hub.CodeBadFrame},
		{`{"type":"join"}`, hub.CodeBadVersion},
		{`{"v":2,"type":"join"}`, hub.CodeBadVersion},
		{`{"v":1,"type":"dance"}`, hub.CodeUnknownType},
		{`{"v":1,"type":"msg","body":"aGk="}`, hub.CodeNotJoined},
		{`{"v":1,"type":"join","room":"r","name":"n","extra":1}`, hub.CodeBadFrame},
		{`{"v":1,"type":"join","room":"r","name":"n"} x`, hub.CodeBadFrame},
	} {
		c.SendRaw([]byte(tc.frame))
		if f := c.Expect("error"); f.Str("code") != tc.code || f.Str("message") == "" {
			t.Errorf("%s: got %v, want code %s with a message", tc.frame, f, tc.code)
		}
	}
	c.JoinOK("r", "n")
	c.SendRaw([]byte(`{"v":1,"type":"msg","body":"not base64!","id":7}`))
	if f := c.ExpectError(hub.CodeBadBody); f["ref"] != float64(7) {
		t.Errorf("error %v does not refer to message 7", f)
	}
	c.SendRaw([]byte(`{"v":1,"type":"msg","body":"aGk=","to":"nobody"}`))
	c.ExpectError(hub.CodeNoSuchMember)
	c.SendRaw([]byte(`{"v":1,"type":"ping","id":3}`))
	if f := c.Expect("pong"); f["id"] != float64(3) {
		t.Errorf("pong %v, want id 3", f)
	}
	// Invalid UTF-8 breaks RFC 6455: error frame, then close 1007.
	c.SendRaw([]byte("{\"v\":1,\"type\":\"ping\",\"x\":\"\xff\"}"))
	c.ExpectError(hub.CodeBadEncoding)
	if code := c.ExpectClose(); code != websocket.CloseInvalidFramePayloadData {
		t.Errorf("close %d, want 1007", code)
	}
	// Binary frames: error, then close 1003.
	d := wstest.Dial(t, url)
	d.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
	d.ExpectError(hub.CodeBinaryRejected)
	if code := d.ExpectClose(); code != websocket.CloseUnsupportedData {
		t.Errorf("close %d, want 1003", code)
	}
	// The server is fine.
	e := wstest.Dial(t, url)
	e.JoinOK("r", "e")
}

func TestDirectMessageReachesOnlyItsRecipient(t *testing.T) {
	url, _ := start(t, hub.Config{})
	a, b, c := wstest.Dial(t, url), wstest.Dial(t, url), wstest.Dial(t, url)
	a.JoinOK("r", "a")
	b.JoinOK("r", "b")
	c.JoinOK("r", "c")
	a.Expect("join")
	a.Expect("join")
	b.Expect("join")
	a.SendRaw([]byte(`{"v":1,"type":"msg","body":"dG8gQg==","to":"B"}`))
	if f := b.Expect("msg"); f.Str("from") != "a" || f.Str("to") != "b" || wstest.Body(f) != "to B" {
		t.Fatalf("b got %v", f)
	}
	a.Msg("to all")
	if f := c.Expect("msg"); wstest.Body(f) != "to all" {
		t.Fatalf("c got %v before the broadcast; the direct message leaked", f)
	}
}

func TestForeignOriginRefused403(t *testing.T) {
	url, h := start(t, hub.Config{})
	_, resp, err := wstest.DialOrigin(url, "https://evil.example")
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("dial with a foreign Origin: err %v, response %v; want 403", err, resp)
	}
	for k, v := range web.Headers {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("403 response: %s = %q, want %q", k, got, v)
		}
	}
	if st := h.Stats(); st.Sessions != 0 {
		t.Fatalf("a refused upgrade left a session: %+v", st)
	}
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	url, _ := start(t, hub.Config{})
	for _, tc := range []struct {
		method, path string
		status       int
		ctype        string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8"},
		{"GET", "/app.mjs", 200, "text/javascript; charset=utf-8"},
		{"GET", "/crypto.mjs", 200, "text/javascript; charset=utf-8"},
		{"GET", "/style.css", 200, "text/css; charset=utf-8"},
		{"GET", "/favicon.ico", 200, "image/x-icon"},
		{"HEAD", "/", 200, "text/html; charset=utf-8"},
		{"GET", "/nope", 404, ""},
		{"GET", "/../etc/passwd", 404, ""},
		{"GET", "/ws", 400, ""},
		{"POST", "/", 405, ""},
	} {
		req, _ := http.NewRequest(tc.method, url+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
		if tc.ctype != "" && resp.Header.Get("Content-Type") != tc.ctype {
			t.Errorf("%s %s: Content-Type %q, want %q", tc.method, tc.path, resp.Header.Get("Content-Type"), tc.ctype)
		}
		for k, v := range web.Headers {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s %s: %s = %q, want %q", tc.method, tc.path, k, got, v)
			}
		}
	}
	csp := web.Headers["Content-Security-Policy"]
	for _, d := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
		"img-src 'self'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("CSP lacks %q", d)
		}
	}
}

func TestHistoryBacklogInMemoryWipedWithRoom(t *testing.T) {
	url, h := start(t, hub.Config{HistoryMessages: 3, HistoryTTL: time.Hour})
	a := wstest.Dial(t, url)
	a.JoinOK("r", "a")
	for i := range 5 {
		a.Msg(fmt.Sprint(i))
	}
	waitFor(t, "3 kept messages", func() bool { return h.Stats().History == 3 })
	b := wstest.Dial(t, url)
	if w := b.JoinOK("r", "b"); w["history"] != float64(3) {
		t.Fatalf("welcome says history %v, want 3", w["history"])
	}
	for i := 2; i < 5; i++ {
		f := b.Expect("msg")
		if f["history"] != true || wstest.Body(f) != fmt.Sprint(i) || f.Str("from") != "" {
			t.Fatalf("history frame %v: want body %d, history true, no sender name", f, i)
		}
	}
	a.Close()
	b.Close()
	waitFor(t, "the room and its backlog to go", func() bool { return h.Stats() == hub.Stats{} })
	c := wstest.Dial(t, url)
	if w := c.JoinOK("r", "c"); w["history"] != float64(0) {
		t.Fatalf("a new room of the same name has history %v", w["history"])
	}
}

func TestResumeReplacesLingeringSession(t *testing.T) {
	url, _ := start(t, hub.Config{})
	a := wstest.Dial(t, url)
	w := a.JoinOK("r", "alice")
	other := wstest.Dial(t, url)
	other.JoinOK("r", "bob")
	// alice's network drops silently; her page reconnects with its token.
	a2 := wstest.Dial(t, url)
	a2.Send(map[string]any{"v": 1, "type": "join", "room": "r", "name": "alice", "resume": "wrong"})
	a2.ExpectError(hub.CodeNameTaken)
	a2.Send(map[string]any{"v": 1, "type": "join", "room": "r", "name": "alice", "resume": w.Str("resume")})
	if w2 := a2.Expect("welcome"); fmt.Sprint(members(w2)) != "[bob alice]" {
		t.Fatalf("resumed welcome %v", w2)
	}
	if f := other.Expect("join"); f.Str("name") != "alice" || f["resumed"] != true {
		t.Fatalf("bob got %v, want alice's resumed join", f)
	}
	a.Expect("join") // bob's
	a.ExpectError(hub.CodeReplaced)
	if code := a.ExpectClose(); code != hub.CloseReplaced {
		t.Fatalf("old connection closed with %d, want %d", code, hub.CloseReplaced)
	}
	other.Msg("hi")
	if f := a2.Expect("msg"); wstest.Body(f) != "hi" {
		t.Fatalf("got %v", f)
	}
}

func TestTimeoutsCloseSilentConnections(t *testing.T) {
	url, h := start(t, hub.Config{JoinTimeout: 200 * time.Millisecond, PingInterval: 50 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	// Never joins: closed with 1008.
	lurker := wstest.Dial(t, url)
	lurker.ExpectError(hub.CodeJoinTimeout)
	if code := lurker.ExpectClose(); code != websocket.ClosePolicyViolation {
		t.Fatalf("lurker closed with %d, want 1008", code)
	}
	// Joined but never answers pings (half-open): dropped after IdleTimeout.
	mute := wstest.Dial(t, url)
	mute.SetPingHandler(func(string) error { return nil })
	mute.JoinOK("r", "mute")
	if _, err := mute.Read(5 * time.Second); err == nil {
		t.Fatal("a client that answers no pings got a frame instead of being dropped")
	}
	// A client that answers pings stays.
	alive := wstest.Dial(t, url)
	alive.JoinOK("r", "alive")
	go func() {
		for {
			if _, err := alive.Read(time.Minute); err != nil {
				return
			}
		}
	}()
	time.Sleep(time.Second)
	if st := h.Stats(); st.Sessions != 1 || st.Names != 1 {
		t.Fatalf("stats %+v: want only the live client", st)
	}
}

func TestLimitsConnsRoomsMembers(t *testing.T) {
	url, _ := start(t, hub.Config{MaxConns: 3, MaxConnsPerPeer: 3, MaxRooms: 1, MaxMembers: 2})
	a, b, c := wstest.Dial(t, url), wstest.Dial(t, url), wstest.Dial(t, url)
	a.JoinOK("r", "a")
	b.JoinOK("r", "b")
	c.Join("r", "c")
	c.ExpectError(hub.CodeRoomFull)
	c.Join("r2", "c")
	c.ExpectError(hub.CodeTooManyRooms)
	d := wstest.Dial(t, url)
	d.ExpectError(hub.CodeServerFull)
	if code := d.ExpectClose(); code != hub.CloseTryAgainLater {
		t.Fatalf("close %d, want 1013", code)
	}
}

func TestPerPeerConnectionCap(t *testing.T) {
	url, h := start(t, hub.Config{MaxConnsPerPeer: 2})
	wstest.Dial(t, url)
	wstest.Dial(t, url)
	// The upgrade answers before the hub counts the connection.
	waitFor(t, "two sessions", func() bool { return h.Stats().Sessions == 2 })
	c := wstest.Dial(t, url)
	c.ExpectError(hub.CodeTooManyConns)
	if code := c.ExpectClose(); code != websocket.ClosePolicyViolation {
		t.Fatalf("close %d, want 1008", code)
	}
}

func TestShutdownSends1001(t *testing.T) {
	cfg := hub.Config{Wire: web.Wire{}}
	h := hub.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	srv := httptest.NewServer(web.New(web.Config{Hub: h}))
	defer srv.Close()
	a := wstest.Dial(t, srv.URL)
	a.JoinOK("r", "a")
	cancel()
	a.ExpectError(hub.CodeShuttingDown)
	if code := a.ExpectClose(); code != websocket.CloseGoingAway {
		t.Fatalf("close %d, want 1001", code)
	}
	<-done
	if st := h.Stats(); st != (hub.Stats{}) {
		t.Fatalf("after shutdown: %+v", st)
	}
}
