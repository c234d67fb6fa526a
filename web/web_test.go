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
	"github.com/onionchat/onionchat/internal/testing/wstest"
	"github.com/onionchat/onionchat/web"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start serves a real hub and handler on a loopback port for the test.
func start(t *testing.T, cfg hub.Config) (string, *hub.Hub) {
	t.Helper()
	h := runHub(t, cfg)
	srv := httptest.NewServer(web.New(web.Config{Hub: h}))
	t.Cleanup(srv.Close)
	return srv.URL, h
}

// runHub runs a hub with web's wire until the test ends.
func runHub(t *testing.T, cfg hub.Config) *hub.Hub {
	cfg.Wire = web.Wire{}
	h := hub.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return h
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

func TestJoinLeaveAndMemberList(t *testing.T) {
	url, h := start(t, hub.Config{})
	a := wstest.Dial(t, url)
	if a.Server.Type() != "server" || a.Server["limits"] == nil {
		t.Fatalf("first frame %v, want the server frame with limits", a.Server)
	}
	w := a.JoinOK("lobby", "alice")
	if got := wstest.Names(w); len(got) != 1 || got[0] != "alice" || w.Str("you") != "alice" || w.Str("room") != wstest.RoomID("lobby") || len(w.Str("sid")) != 22 {
		t.Fatalf("welcome = %v", w)
	}
	b := wstest.Dial(t, url)
	w = b.JoinOK("lobby", "  bob ")
	if got := fmt.Sprint(wstest.Names(w)); got != "[alice bob]" {
		t.Fatalf("bob's member list = %s, want [alice bob]", got)
	}
	if f := a.Expect("join"); f.Str("name") != "bob" || f.Str("sid") != w.Str("sid") {
		t.Fatalf("alice got %v, want bob's join with his sid", f)
	}
	c := wstest.Dial(t, url)
	c.JoinOK("elsewhere", "carol") // another room: alice and bob hear nothing of it
	b.Leave()
	if f := a.Expect("leave"); f.Str("name") != "bob" {
		t.Fatalf("alice got %v, want bob's leave", f)
	}
	a.Leave()
	c.Leave()
	waitFor(t, "an empty hub", func() bool { return h.Stats() == hub.Stats{} })
}

// A client's close frame ends its session at once (leave); a connection
// that drops without one leaves its session away for the resume window.
func TestCloseFrameLeavesDropGoesAway(t *testing.T) {
	url, h := start(t, hub.Config{})
	a := wstest.DialJoin(t, url, "r", "alice")
	b := wstest.DialJoin(t, url, "r", "bob")
	a.Expect("join")
	b.Close() // TCP close, no close frame: the transport failed
	if f := a.Expect("away"); f.Str("name") != "bob" {
		t.Fatalf("alice got %v, want bob away", f)
	}
	c := wstest.DialJoin(t, url, "r", "carol")
	a.Expect("join")
	c.Leave()
	if f := a.Expect("leave"); f.Str("name") != "carol" {
		t.Fatalf("alice got %v, want carol's leave", f)
	}
	if st := h.Stats(); st.Away != 1 || st.Names != 2 {
		t.Fatalf("stats %+v: want bob away, alice and bob holding names", st)
	}
}

func TestFanOutFiftyClientsNoLossNoDuplicates(t *testing.T) {
	const clients, perClient = 50, 20
	url, h := start(t, hub.Config{MaxConnsPerPeer: clients, MaxMembers: clients, JoinRate: 1000, JoinBurst: clients})
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
			last := int64(0)
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
				if seq := f.Int("seq"); seq <= last {
					errs <- fmt.Errorf("client %d: seq %d after %d", i, seq, last)
					return
				} else {
					last = seq
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
	return []byte(`{"v":2,"type":"msg","body":"` + base64.StdEncoding.EncodeToString([]byte(body)) + `"}`)
}

func TestSlowReaderDroppedOthersKeepFlowing(t *testing.T) {
	const n, size = 600, 30 << 10 // 18 MB in all: more than loopback socket buffers hold
	url, h := start(t, hub.Config{Rate: 1e6, Burst: 1e6, ByteRate: 1 << 30, SendQueue: 64, SendQueueBytes: 256 << 10})
	stalled := wstest.DialJoin(t, url, "r", "stalled")
	fast := wstest.DialJoin(t, url, "r", "fast")
	sender := wstest.DialJoin(t, url, "r", "sender")
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
			if f.Type() != "msg" { // the stalled reader, dropped: away
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
	c := wstest.DialJoin(t, url, "r", "big")
	c.SendRaw(make([]byte, hub.DefaultMaxFrameBytes+1))
	if code := c.ExpectClose(); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
	// A frame of exactly the limit is accepted (as a frame; it is no JSON).
	d := wstest.Dial(t, url)
	d.SendRaw([]byte(strings.Repeat(" ", hub.DefaultMaxFrameBytes)))
	d.ExpectError("bad_frame")
	// Closed for its own fault, the big sender left: it is not away.
	waitFor(t, "the big sender's session to end", func() bool { return h.Stats().Names == 0 })
}

// WebSocket pings count against the rate like text frames: within it they
// are answered; a flood of them closes the connection with 1008.
func TestPingFloodClosed1008(t *testing.T) {
	url, h := start(t, hub.Config{Rate: 5, Burst: 10})
	victim := wstest.DialJoin(t, url, "r", "victim")
	c := wstest.DialJoin(t, url, "r", "pinger")
	victim.Expect("join")
	pongs := make(chan string, 100)
	c.SetPongHandler(func(d string) error { pongs <- d; return nil })
	c.WriteControl(websocket.PingMessage, []byte("one"), time.Now().Add(time.Second))
	// The WebSocket pong comes before the answer to a protocol ping sent
	// after it; gorilla calls the pong handler while reading.
	c.SendRaw([]byte(`{"v":2,"type":"ping","id":1}`))
	c.Expect("pong")
	select {
	case d := <-pongs:
		if d != "one" {
			t.Fatalf("pong %q", d)
		}
	default:
		t.Fatal("a ping within the rate was not answered")
	}
	time.Sleep(100 * time.Millisecond)
	sent := 0
	for ; sent < 20000; sent++ {
		if c.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)) != nil {
			break
		}
	}
	if code := c.ExpectClose(); code != websocket.ClosePolicyViolation {
		t.Fatalf("after %d pings: close %d, want 1008", sent, code)
	}
	if n := len(pongs); n > 10 {
		t.Errorf("%d pongs answered to a flood, want at most the burst", n)
	}
	if f := victim.Expect("leave"); f.Str("name") != "pinger" {
		t.Fatalf("victim got %v, want the pinger's leave", f)
	}
	if st := h.Stats(); st.RateDropped == 0 {
		t.Fatalf("stats %+v: no frame counted as dropped", st)
	}
	t.Logf("closed after %d pings", sent)
}

func TestFloodPersistingIsClosed(t *testing.T) {
	url, _ := start(t, hub.Config{Rate: 1, Burst: 5})
	c := wstest.Dial(t, url)
	for range 100 {
		if c.WriteMessage(websocket.TextMessage, []byte(`{"v":2,"type":"ping"}`)) != nil {
			break
		}
	}
	if code := c.ExpectClose(); code != websocket.ClosePolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
}

// Faults of the transport: invalid UTF-8 closes 1007, a binary frame
// 1003, each after an error frame; the server serves others on.
func TestBadEncodingAndBinaryClosed(t *testing.T) {
	url, _ := start(t, hub.Config{})
	c := wstest.Dial(t, url)
	c.SendRaw([]byte(`{not json`))
	c.ExpectError("bad_frame")
	c.SendRaw([]byte(`{"v":1,"type":"join","room":"r","name":"n"}`))
	c.ExpectError("bad_version")
	c.SendRaw([]byte(`{"v":2,"type":"ping","id":3}`))
	if f := c.Expect("pong"); f["id"] != float64(3) {
		t.Errorf("pong %v, want id 3", f)
	}
	c.SendRaw([]byte("{\"v\":2,\"type\":\"ping\",\"x\":\"\xff\"}"))
	c.ExpectError("bad_encoding")
	if code := c.ExpectClose(); code != websocket.CloseInvalidFramePayloadData {
		t.Errorf("close %d, want 1007", code)
	}
	d := wstest.Dial(t, url)
	d.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
	d.ExpectError(hub.CodeBinaryRejected)
	if code := d.ExpectClose(); code != websocket.CloseUnsupportedData {
		t.Errorf("close %d, want 1003", code)
	}
	wstest.DialJoin(t, url, "r", "e") // the server still serves
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

func TestTimeoutsCloseSilentConnections(t *testing.T) {
	url, h := start(t, hub.Config{JoinTimeout: 200 * time.Millisecond, PingInterval: 50 * time.Millisecond, IdleTimeout: 300 * time.Millisecond,
		ResumeWindow: 200 * time.Millisecond})
	// Never joins: closed with 1008.
	lurker := wstest.Dial(t, url)
	lurker.ExpectError("join_timeout")
	if code := lurker.ExpectClose(); code != websocket.ClosePolicyViolation {
		t.Fatalf("lurker closed with %d, want 1008", code)
	}
	// Joined but never answers pings (half-open): dropped after IdleTimeout
	// (away, then gone after the resume window).
	mute := wstest.Dial(t, url)
	mute.SetPingHandler(func(string) error { return nil })
	mute.JoinOK("r", "mute")
	if _, err := mute.Read(5 * time.Second); err == nil {
		t.Fatal("a client that answers no pings got a frame instead of being dropped")
	}
	// A client that answers pings stays.
	alive := wstest.DialJoin(t, url, "r", "alive")
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

func TestShutdownSends1001(t *testing.T) {
	cfg := hub.Config{Wire: web.Wire{}}
	h := hub.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	srv := httptest.NewServer(web.New(web.Config{Hub: h}))
	defer srv.Close()
	a := wstest.DialJoin(t, srv.URL, "r", "a")
	cancel()
	a.ExpectError("shutting_down")
	if code := a.ExpectClose(); code != websocket.CloseGoingAway {
		t.Fatalf("close %d, want 1001", code)
	}
	<-done
	if st := h.Stats(); st != (hub.Stats{}) {
		t.Fatalf("after shutdown: %+v", st)
	}
}
