package e2e

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/onionchat/onionchat/internal/testing/procfs"
	"github.com/onionchat/onionchat/internal/testing/wstest"
)

// An outsider has nothing but the address: the tests in this file are
// what such a person tried against the real binary (issue 25).

// dialAs dials a WebSocket from the loopback address src and reads its
// server frame.
func dialAs(t *testing.T, base, src string) *wstest.Client {
	t.Helper()
	ws, err := dialWSFrom(context.Background(), src, base)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	return wstest.New(t, ws)
}

// startWith starts the binary in local mode with a configuration file.
func startWith(t *testing.T, config string) *Proc {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "c.toml")
	must(t, os.WriteFile(cfg, []byte(config), 0o600))
	return Start(t, "--config", cfg, "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "data"))
}

// joinResult joins and returns the type of c's first frame after its join, and the
// error code if it is an error (or why the connection ended).
func joinResult(c *wstest.Client, room, name string) (typ, code string) {
	c.Join(room, name)
	f, err := c.Read(wstest.Timeout)
	if err != nil {
		return "closed", err.Error()
	}
	return f.Type(), f.Str("code")
}

// TestAwaySessionsLockNobodyOut: three attacker addresses fill max_conns
// and max_rooms with pairs of sessions that exchanged a message and then
// dropped without a close frame (away for the resume window). Before,
// away sessions were charged to no peer and rooms of two ranked as
// shared: every newcomer got server_full and every new room
// too_many_rooms for three minutes. Now a friend resumes her own session
// whatever the attackers hold, a new peer joins the friends' room, and
// another new peer makes a room of its own, each taking the place of an
// away session of the attacker holding the most; the friends who chat
// are never evicted.
func TestAwaySessionsLockNobodyOut(t *testing.T) {
	const maxConns, maxRooms = 20, 10
	p := startWith(t, fmt.Sprintf("mode = \"local\"\n[hub]\nmax_conns = %d\nmax_rooms = %d\nmax_conns_per_peer = 4\n", maxConns, maxRooms))

	alice, bob := dialAs(t, p.URL, "127.0.0.150"), dialAs(t, p.URL, "127.0.0.151")
	alice.JoinOK("friends", "alice")
	bobWelcome := bob.JoinOK("friends", "bob")
	alice.Expect("join")
	alice.Says(bob, "alice", "hello bob")

	// Nine rooms of two, each pair from two of three attacker
	// addresses, a message exchanged, then both dropped: 18 away sessions
	// beside alice and bob fill max_conns, and the friends' room beside
	// them fills max_rooms.
	attackers := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	start := time.Now()
	for i := range (maxConns - 2) / 2 {
		room := fmt.Sprintf("attackers %d", i)
		var pair [2]*wstest.Client
		for j := range pair {
			src := attackers[(i+j)%len(attackers)]
			for try := 0; ; try++ {
				c := dialAs(t, p.URL, src)
				typ, code := joinResult(c, room, fmt.Sprintf("a%d", j))
				if typ == "welcome" {
					pair[j] = c
					break
				}
				c.Close()
				if code != "join_rate" || try > 20 {
					t.Fatalf("attacker session %d/%d from %s: %s %s", i, j, src, typ, code)
				}
				time.Sleep(300 * time.Millisecond)
			}
		}
		pair[0].Expect("join")
		pair[0].Msg("x")
		pair[1].Expect("msg")
		for _, c := range pair {
			c.NetConn().Close() // no close frame: the session goes away
		}
	}
	waitFor(t, "the attackers' sessions to be away", 10*time.Second, func() bool {
		sessions, _, _ := stats(t, p)
		return sessions == 2
	})
	t.Logf("%d away sessions in %d rooms from %d addresses made in %v", maxConns-2, maxRooms-1, len(attackers), time.Since(start).Round(time.Millisecond))

	// Bob's connection drops; he comes back with his token.
	bob.NetConn().Close()
	alice.Expect("away")
	results := map[string]string{}
	bob2 := dialAs(t, p.URL, "127.0.0.151")
	bob2.Resume("friends", bobWelcome, 1)
	f, err := bob2.Read(wstest.Timeout)
	switch {
	case err != nil:
		results["bob resumes"] = "closed " + err.Error()
	case f.Type() == "welcome" && f["resumed"] != true:
		results["bob resumes"] = "welcome (a new session, not resumed)"
	default:
		results["bob resumes"] = f.Type() + " " + f.Str("code")
	}

	carol := dialAs(t, p.URL, "127.0.0.160")
	typ, code := joinResult(carol, "friends", "carol")
	results["a new peer joins the friends' room"] = typ + " " + code
	dave := dialAs(t, p.URL, "127.0.0.161")
	typ, code = joinResult(dave, "dave's own", "dave")
	results["a new peer makes a new room"] = typ + " " + code
	t.Logf("with max_conns and max_rooms full of away pairs: %v", results)
	for what, got := range results {
		if got != "welcome " {
			t.Errorf("%s: got %s, want a welcome", what, got)
		}
	}
	if t.Failed() {
		return
	}
	// Alice and bob chat on, and carol reads them.
	alice.Msg("still here")
	for _, c := range []*wstest.Client{bob2, carol} {
		for {
			f := c.Next()
			if f.Type() == "msg" && wstest.Body(f) == "still here" {
				break
			}
			if f.Type() == "error" || f.Type() == "close" {
				t.Fatalf("got %v", f)
			}
		}
	}
}

// maskedFrame encodes a client frame (masked, as RFC 6455 requires of
// clients) with opcode op, the FIN bit if fin.
func maskedFrame(op byte, fin bool, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	var b []byte
	switch n := len(payload); {
	case n < 126:
		b = []byte{b0, 0x80 | byte(n)}
	case n <= 0xffff:
		b = []byte{b0, 0x80 | 126, byte(n >> 8), byte(n)}
	default:
		b = []byte{b0, 0x80 | 127, 0, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	mask := [4]byte{1, 2, 3, 4}
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i%4])
	}
	return b
}

// flood writes batches of raw frames on c (made by next, given how many
// it wrote so far) until the server closes the connection, d passes or a
// write fails, pausing pause between batches; it returns the frames
// written, the close code (-1: none) and how long it took.
func flood(t *testing.T, c *wstest.Client, first []byte, next func(sent int) []byte, perBatch int, pause, d time.Duration) (sent, code int, took time.Duration) {
	t.Helper()
	closed := make(chan int, 1)
	go func() {
		for {
			_, err := c.Read(d + 5*time.Second)
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					closed <- ce.Code
				} else {
					closed <- -1
				}
				return
			}
		}
	}()
	nc := c.NetConn()
	start := time.Now()
	nc.SetWriteDeadline(start.Add(d))
	if first != nil {
		nc.Write(first)
	}
	code = -1
	var batch []byte
	for time.Since(start) < d {
		select {
		case code = <-closed:
			return sent, code, time.Since(start)
		default:
		}
		batch = batch[:0]
		for range perBatch {
			batch = append(batch, next(sent)...)
			sent++
		}
		if _, err := nc.Write(batch); err != nil {
			break
		}
		if pause > 0 {
			time.Sleep(pause)
		}
	}
	select {
	case code = <-closed:
	case <-time.After(5 * time.Second):
	}
	return sent, code, time.Since(start)
}

// cpuOf returns the CPU seconds process pid has used.
func cpuOf(t *testing.T, pid int) float64 {
	t.Helper()
	st, err := procfs.ReadStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	return st.CPUSeconds()
}

// TestFragmentFloodClosed: a text frame without FIN followed by empty
// continuation frames was never charged (gorilla assembles fragments
// below the frame reader): one connection made the server burn a core.
// Now every frame counts, continuation frames too, and the fragment
// flood is closed 1008 within the bound of a text flood (4 × burst
// dropped); the figures of both floods are printed side by side, and a
// member chats on.
func TestFragmentFloodClosed(t *testing.T) {
	p := Start(t, "--mode", "local", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "data"))
	pid := p.Cmd.Process.Pid
	member := wstest.DialJoin(t, p.URL, "r", "member")
	friend := wstest.DialJoin(t, p.URL, "r", "friend")
	member.Expect("join")

	ping := maskedFrame(websocket.TextMessage, true, []byte(`{"v":2,"type":"ping"}`))
	cont := maskedFrame(0, false, nil)
	cpu := cpuOf(t, pid)
	textSent, textCode, textTook := flood(t, wstest.Dial(t, p.URL), nil, func(int) []byte { return ping }, 64, 0, 10*time.Second)
	textCPU := cpuOf(t, pid) - cpu
	cpu = cpuOf(t, pid)
	fragSent, fragCode, fragTook := flood(t, wstest.Dial(t, p.URL), maskedFrame(websocket.TextMessage, false, []byte("{")),
		func(int) []byte { return cont }, 4096, 0, 10*time.Second)
	fragCPU := cpuOf(t, pid) - cpu
	t.Logf("text flood: %d frames written, closed %d after %v, server CPU %.2f s", textSent, textCode, textTook.Round(time.Millisecond), textCPU)
	t.Logf("fragment flood: %d frames written, closed %d after %v, server CPU %.2f s", fragSent, fragCode, fragTook.Round(time.Millisecond), fragCPU)
	if textCode != websocket.ClosePolicyViolation {
		t.Errorf("text flood: close %d, want 1008", textCode)
	}
	if fragCode != websocket.ClosePolicyViolation {
		t.Errorf("fragment flood: close %d, want 1008", fragCode)
	}
	member.Says(friend, "member", "still here")
}

// TestPacedFloodClosed: a client that never joins and sends 32 KiB frames
// 40 times a second (6 times the byte rate and 4 times the frame rate),
// so that a frame is admitted now and then, was never closed: every
// admitted frame reset the flood count, and every dropped frame was
// decoded in full first. Now a sustained excess is closed 1008 whatever
// its rhythm.
func TestPacedFloodClosed(t *testing.T) {
	p := Start(t, "--mode", "local", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "data"))
	pid := p.Cmd.Process.Pid
	big := maskedFrame(websocket.TextMessage, true, []byte(`{"v":2,"type":"msg","body":"`+strings.Repeat("A", 32<<10)+`"}`))
	cpu := cpuOf(t, pid)
	sent, code, took := flood(t, wstest.Dial(t, p.URL), nil, func(int) []byte { return big }, 1, 25*time.Millisecond, 20*time.Second)
	t.Logf("paced flood: %d frames of 32 KiB (%.1f MB/s) written, closed %d after %v, server CPU %.2f s",
		sent, float64(sent*len(big))/took.Seconds()/1e6, code, took.Round(time.Millisecond), cpuOf(t, pid)-cpu)
	if code != websocket.ClosePolicyViolation {
		t.Fatalf("close %d, want 1008", code)
	}
}

// sendPaced sends 31 KiB message frames on c, under the default byte
// rate (4 a second, after a burst of 6), until stop, reading nothing.
func sendPaced(c *wstest.Client, stop <-chan struct{}, sent *atomic.Int64) {
	body := base64.StdEncoding.EncodeToString(make([]byte, 23<<10)) // 31 KiB of base64
	frame := []byte(`{"v":2,"type":"msg","body":"` + body + `"}`)
	tick := time.NewTicker(time.Second / 4)
	defer tick.Stop()
	for i := 0; ; i++ {
		if i >= 6 {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if c.WriteMessage(websocket.TextMessage, frame) != nil {
			return
		}
		sent.Add(int64(len(frame)))
	}
}

// TestFloodsEraseNoCatchUp: bob is away; alice sends him five messages.
// Forty outsider connections, each alone in a room of its own, and forty
// more in twenty rooms of two, send 31 KiB frames at two thirds of the
// byte rate for 8 s. Before, every frame was kept, even a lone sender's, and the hub's cap
// dropped the oldest frames of all: bob came back to catchup=0 gap=5, his
// messages gone. Now a lone sender's frames are not kept, the cap takes
// from the rooms holding the most, and bob gets all five on his resume.
func TestFloodsEraseNoCatchUp(t *testing.T) {
	p := Start(t, "--mode", "local", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "data"))
	alice := dialAs(t, p.URL, "127.0.0.150")
	bob := dialAs(t, p.URL, "127.0.0.151")
	alice.JoinOK("friends", "alice")
	bobWelcome := bob.JoinOK("friends", "bob")
	alice.Expect("join")
	bob.NetConn().Close()
	alice.Expect("away")
	for i := range 5 {
		alice.Msg(fmt.Sprint("for bob ", i))
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent atomic.Int64
	addr := 0
	next := func() string { addr++; return fmt.Sprintf("127.0.3.%d", 1+(addr-1)/4) }
	for i := range 40 {
		c := dialAs(t, p.URL, next())
		c.JoinOK(fmt.Sprint("lone ", i), "x")
		wg.Go(func() { sendPaced(c, stop, &sent) })
	}
	for i := range 20 {
		x, y := dialAs(t, p.URL, next()), dialAs(t, p.URL, next())
		x.JoinOK(fmt.Sprint("pair ", i), "x")
		y.JoinOK(fmt.Sprint("pair ", i), "y")
		wg.Go(func() { sendPaced(x, stop, &sent) })
		wg.Go(func() { // y reads what x sends, as a member would
			for {
				if _, err := y.Read(2 * time.Second); err != nil {
					return
				}
			}
		})
	}
	time.Sleep(8 * time.Second)
	close(stop)
	wg.Wait()
	stats(t, p)
	lines := statsRe.FindAllString(p.Output(), -1)
	t.Logf("80 outsider connections sent %.1f MiB in 8 s; server: %s", float64(sent.Load())/(1<<20), lines[len(lines)-1])

	back := dialAs(t, p.URL, "127.0.0.151")
	back.Resume("friends", bobWelcome, 0)
	w := back.Expect("welcome")
	var got []string
	for range w.Int("catchup") {
		if f := back.Next(); f.Type() == "msg" && f.Str("from") == "alice" {
			got = append(got, wstest.Body(f))
		}
	}
	t.Logf("bob came back: resumed %v, catchup=%d gap=%d, alice's messages %q", w["resumed"], w.Int("catchup"), w.Int("gap"), got)
	if w["resumed"] != true || w.Int("gap") != 0 || len(got) != 5 {
		t.Fatalf("bob missed alice's messages after the flood")
	}
}

// TestWholeScriptLookAlikes: names written wholly in another script, or
// with small capitals, digits or letter pairs that look like a present
// member's, were accepted beside it. Now each is refused as
// name_confusable over a real socket; a different name still joins.
func TestWholeScriptLookAlikes(t *testing.T) {
	p := Start(t, "--mode", "local", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "data"))
	var accepted []string
	for i, pair := range [][2]string{
		{"Alice", "Аӏісе"}, {"Alice", "ᴀlice"}, {"bob", "b0b"}, {"oscar", "0scar"},
		{"dave", "clave"}, {"kim", "ĸim"}, {"tom", "ᴛom"},
	} {
		room := fmt.Sprint("look-alikes ", i)
		first := dialAs(t, p.URL, fmt.Sprintf("127.0.4.%d", 2*i+1))
		first.JoinOK(room, pair[0])
		c := dialAs(t, p.URL, fmt.Sprintf("127.0.4.%d", 2*i+2))
		if typ, code := joinResult(c, room, pair[1]); typ != "error" || code != "name_confusable" {
			accepted = append(accepted, fmt.Sprintf("%q beside %q (%s %s)", pair[1], pair[0], typ, code))
		}
		c.Close()
		if i < 6 {
			first.Close()
		}
	}
	t.Logf("accepted beside a look-alike: %d of 7 %v", len(accepted), accepted)
	if len(accepted) > 0 {
		t.Fatalf("look-alike names accepted")
	}
	dialAs(t, p.URL, "127.0.4.100").JoinOK("look-alikes 6", "Carol")
}

// upgradeRequest is a WebSocket upgrade request for host, as a page's.
func upgradeRequest(host string) []byte {
	return []byte("GET /ws HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://" + host + "\r\n\r\n")
}

// openFDs counts the file descriptors process pid holds.
func openFDs(pid int) int {
	es, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(es)
}

// TestRefusedUpgradesReleased: one address opens WebSocket upgrades as fast
// as it can and never reads. Past max_conns_per_peer each is refused
// (too_many_conns), and each refused socket used to linger up to 2 s for
// a close that never came: the server sat at its bound on open
// connections and a friend's chat slowed to seconds. Now a refused upgrade
// releases its socket at once: the server's file descriptors stay far
// below that bound, and the friends' round trips are printed beside.
func TestRefusedUpgradesReleased(t *testing.T) {
	p := Start(t, "--mode", "local", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "data"))
	pid := p.Cmd.Process.Pid
	host := hostPort(p.URL)
	alice, bob := dialAs(t, p.URL, "127.0.0.150"), dialAs(t, p.URL, "127.0.0.151")
	wstest.Pair(alice, bob, "friends")
	roundTrips := func(n int) (median, worst time.Duration) {
		var ds []time.Duration
		for i := range n {
			start := time.Now()
			alice.Says(bob, "alice", fmt.Sprint("ping ", i))
			ds = append(ds, time.Since(start))
			time.Sleep(50 * time.Millisecond)
		}
		slices.Sort(ds)
		return ds[len(ds)/2], ds[len(ds)-1]
	}
	quietMedian, quietWorst := roundTrips(10)
	// A refused upgrade still tells its page why, then closes.
	for range 4 {
		defer dialAs(t, p.URL, "127.0.0.20").Close()
	}
	fifth := dialAs(t, p.URL, "127.0.0.20")
	fifth.ExpectError("too_many_conns")
	if code := fifth.ExpectClose(); code != websocket.ClosePolicyViolation {
		t.Fatalf("a refused upgrade closed %d, want 1008", code)
	}
	idle := openFDs(pid)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var dials atomic.Int64
	req := upgradeRequest(host)
	attackStart := time.Now()
	for range 16 {
		wg.Go(func() {
			// About 220 upgrades a second from each of 16 goroutines; each
			// socket is kept open, unread, for 2.5 s.
			type heldConn struct {
				c  net.Conn
				at time.Time
			}
			var held []heldConn
			defer func() {
				for _, h := range held {
					h.c.Close()
				}
			}()
			tick := time.NewTicker(time.Second / 220)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				for len(held) > 0 && time.Since(held[0].at) > 2500*time.Millisecond {
					held[0].c.Close()
					held = held[1:]
				}
				c, err := dialFrom("127.0.0.9", host)
				if err != nil {
					continue
				}
				dials.Add(1)
				c.Write(req)
				held = append(held, heldConn{c, time.Now()})
			}
		})
	}
	time.Sleep(3 * time.Second)
	most := openFDs(pid)
	median, worst := roundTrips(20)
	most = max(most, openFDs(pid))
	close(stop)
	wg.Wait()
	took := time.Since(attackStart)
	t.Logf("one address opened %d upgrades in %.1f s (%.0f a second); server file descriptors: %d idle, at most %d under attack; friends' round trip: median %v, worst %v (quiet: %v, %v)",
		dials.Load(), took.Seconds(), float64(dials.Load())/took.Seconds(), idle, most,
		median.Round(time.Millisecond), worst.Round(time.Millisecond), quietMedian.Round(time.Millisecond), quietWorst.Round(time.Millisecond))
	if most > idle+256 {
		t.Fatalf("refused upgrades held %d file descriptors (idle: %d)", most, idle)
	}
}
