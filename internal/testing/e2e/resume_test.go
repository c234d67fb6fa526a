package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/onionchat/onionchat/internal/testing/wstest"
)

// resumeConfig: pings every 200 ms and a 1 s idle timeout, so that a
// half-open connection is found within a second; a resume window that
// covers the whole test.
const resumeConfig = `mode = "lan"
[hub]
ping_interval = "200ms"
idle_timeout = "1s"
resume_window = "1m"
join_rate = 100.0
join_burst = 100
`

func startResumeServer(t *testing.T, data, listen string) *Proc {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "c.toml")
	must(t, os.WriteFile(cfg, []byte(resumeConfig), 0o600))
	return Start(t, "--config", cfg, "--listen", listen, "--data-dir", data)
}

// peer is a raw v2 client whose frames a goroutine of its own reads into
// a channel, so that the test can write (messages, acks) while it reads.
type peer struct {
	*wstest.Client
	name   string
	frames chan wstest.Frame
}

func newPeer(t *testing.T, url, name string) *peer {
	t.Helper()
	c := wstest.Dial(t, url)
	return &peer{Client: c, name: name}
}

// read starts the reader; call it once the join's welcome has been read.
func (p *peer) read() {
	p.frames = make(chan wstest.Frame, 4096)
	go func() {
		defer close(p.frames)
		for {
			f, err := p.Read(time.Minute)
			if err != nil {
				return
			}
			p.frames <- f
		}
	}()
}

// next returns the next frame, or fails the test after d.
func (p *peer) next(t *testing.T, d time.Duration) wstest.Frame {
	t.Helper()
	select {
	case f, ok := <-p.frames:
		if !ok {
			t.Fatalf("%s: connection ended", p.name)
		}
		return f
	case <-time.After(d):
		t.Fatalf("%s: no frame within %v", p.name, d)
		return nil
	}
}

// sender tracks what a member sent and what the hub said of it.
type sender struct {
	*peer
	sent   map[int64]wstest.Frame // id -> sent
	got    []wstest.Frame         // messages received
	events []string               // "away bob", "back bob", …
}

// handle takes in one frame: keeps messages, sent and events.
func (s *sender) handle(t *testing.T, f wstest.Frame) {
	t.Helper()
	switch f.Type() {
	case "msg":
		s.got = append(s.got, f)
	case "sent":
		s.sent[f.Int("id")] = f
	case "away", "back", "join", "leave":
		s.events = append(s.events, f.Type()+" "+f.Str("name"))
	case "pong":
	default:
		t.Errorf("%s got %v", s.name, f)
	}
}

// drain handles every frame that comes within d.
func (s *sender) drain(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case f, ok := <-s.frames:
			if !ok {
				t.Fatalf("%s: connection ended", s.name)
			}
			s.handle(t, f)
		case <-deadline:
			return
		}
	}
}

// TestCutMemberCatchesUp is issue 19 over real sockets without a browser:
// three members in LAN mode; one member's connection is cut (a TCP reset,
// or half-open: it stops reading and answering pings) while the two
// others keep sending; it comes back with resume and since and receives
// every frame it missed, in order, once. The senders got sent for every
// message.
func TestCutMemberCatchesUp(t *testing.T) {
	for _, cut := range []string{"reset", "half-open"} {
		t.Run(cut, func(t *testing.T) {
			p := startResumeServer(t, filepath.Join(t.TempDir(), "data"), "127.0.0.1:0")
			const room = "kitchen"
			alice := &sender{peer: newPeer(t, p.URL, "alice"), sent: map[int64]wstest.Frame{}}
			bob := &sender{peer: newPeer(t, p.URL, "bob"), sent: map[int64]wstest.Frame{}}
			carol := newPeer(t, p.URL, "carol")
			alice.JoinOK(room, "alice")
			bob.JoinOK(room, "bob")
			welcome := carol.JoinOK(room, "carol")
			alice.read()
			bob.read()
			carol.read()
			// A message before the cut, which carol has.
			alice.MsgID("alice before", 1)
			f := carol.next(t, 5*time.Second)
			if f.Type() != "msg" || wstest.Body(f) != "alice before" {
				t.Fatalf("carol got %v", f)
			}
			since := f.Int("seq")

			// The cut.
			nc := carol.NetConn()
			if tc, ok := nc.(interface{ NetConn() net.Conn }); ok {
				nc = tc.NetConn() // under TLS
			}
			switch cut {
			case "reset":
				nc.(*net.TCPConn).SetLinger(0)
				nc.Close()
			case "half-open":
				// Carol's reader stops: she neither reads nor answers pings
				// from now on; the server's idle timeout must find her.
				carol.SetReadDeadline(time.Now())
			}
			waitAway := time.Now()
			for !slices.Contains(alice.events, "away carol") {
				if time.Since(waitAway) > 10*time.Second {
					t.Fatalf("alice never saw carol away: %v", alice.events)
				}
				alice.drain(t, 50*time.Millisecond)
			}
			t.Logf("carol away after %v", time.Since(waitAway).Round(10*time.Millisecond))

			// Alice and bob keep sending while carol is away.
			const perSender, every = 12, 100 * time.Millisecond
			var wg sync.WaitGroup
			for _, s := range []*sender{alice, bob} {
				wg.Go(func() {
					for i := range perSender {
						s.MsgID(fmt.Sprintf("%s %d", s.name, i), int64(100+i))
						s.drain(t, every)
					}
					s.drain(t, 300*time.Millisecond)
				})
			}
			wg.Wait()
			if cut == "half-open" {
				nc.Close() // the socket finally drops
			}

			// Carol comes back with her token and what she had.
			carol2 := newPeer(t, p.URL, "carol")
			carol2.Resume(room, welcome, since)
			w := carol2.Expect("welcome")
			want := 2 * perSender // every message sent while she was away
			if w["resumed"] != true || w.Str("sid") != welcome.Str("sid") || w.Int("gap") != 0 || w.Int("catchup") != int64(want) {
				t.Fatalf("carol's welcome on return: %v; want resumed, her sid, no gap, catchup %d", w, want)
			}
			next := map[string]int{}
			last := since
			for range want {
				f := carol2.Next()
				if f.Type() != "msg" || f["old"] != true || f.Int("seq") != last+1 {
					t.Fatalf("catch-up frame %v after seq %d", f, last)
				}
				last = f.Int("seq")
				var who string
				var n int
				if _, err := fmt.Sscanf(wstest.Body(f), "%s %d", &who, &n); err != nil || n != next[who] || f.Str("from") != who {
					t.Fatalf("catch-up %q from %q: want %s's message %d (lost, duplicated or out of order)", wstest.Body(f), f.Str("from"), who, next[who])
				}
				next[who]++
			}
			if next["alice"] != perSender || next["bob"] != perSender {
				t.Fatalf("caught up %v, want %d from each", next, perSender)
			}
			carol2.read()

			// The senders: sent for each.
			for _, s := range []*sender{alice, bob} {
				deadline := time.Now().Add(10 * time.Second)
				for time.Now().Before(deadline) && !slices.Contains(s.events, "back carol") {
					s.drain(t, 50*time.Millisecond)
				}
				for i := range perSender {
					if r := s.sent[int64(100+i)]; r == nil {
						t.Fatalf("%s's message %d got no sent", s.name, i)
					}
				}
				if !slices.Contains(s.events, "back carol") || slices.Contains(s.events, "leave carol") {
					t.Fatalf("%s saw %v, want carol away then back, never leaving", s.name, s.events)
				}
			}
			// Carol's replaced connection sees nothing more; her new one is
			// live: a message reaches her once.
			bob.Msg("welcome back")
			if f := carol2.next(t, 5*time.Second); wstest.Body(f) != "welcome back" || f["old"] == true {
				t.Fatalf("carol got %v", f)
			}
		})
	}
}

// TestRestartMembersRejoinAndGetEverything: the server restarts (same
// data directory, same address). Members' tokens mean nothing to it, so
// each rejoins as a new session, in some order; every member receives
// every frame sent after the restart by someone who was not alone, once
// and in order, whoever rejoined first: the room keeps those, and a new
// session gets all it keeps. What a member alone in the room sends is not
// kept (nobody can need it, say the hub's rules; the page sends it again
// to members who come back, docs/protocol.md §11.5).
func TestRestartMembersRejoinAndGetEverything(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	p := startResumeServer(t, data, "127.0.0.1:0")
	const room = "porch"
	names := []string{"alice", "bob", "carol"}
	welcomes := map[string]wstest.Frame{}
	for _, n := range names {
		c := wstest.Dial(t, p.URL)
		welcomes[n] = c.JoinOK(room, n)
	}
	listen := hostPort(p.URL)
	must(t, p.Signal(syscall.SIGTERM))
	if code := p.Wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	p = startResumeServer(t, data, listen)

	// Alice rejoins first and sends at once; bob then carol rejoin, each
	// sending as soon as it is in. Each gets as catch-up what was sent
	// before it came back by someone who was not alone then.
	var sent, kept []string
	clients := map[string]*wstest.Client{}
	for _, n := range names {
		c := wstest.Dial(t, p.URL)
		c.Resume(room, welcomes[n], 7) // the old server's token and seq
		w := c.Expect("welcome")
		if w["resumed"] == true || w.Int("catchup") != int64(len(kept)) {
			t.Fatalf("%s after the restart: %v; want a new session with catchup %d", n, w, len(kept))
		}
		for _, body := range kept {
			if f := c.Expect("msg"); f["old"] != true || wstest.Body(f) != body {
				t.Fatalf("%s: catch-up frame %v, want %q", n, f, body)
			}
		}
		clients[n] = c
		for j := range 2 {
			body := fmt.Sprintf("%s %d", n, j)
			c.MsgID(body, int64(j+1))
			sent = append(sent, body)
			if len(clients) > 1 {
				kept = append(kept, body)
			}
		}
		for range 2 {
			if f := c.Next(); f.Type() != "sent" {
				t.Fatalf("%s got %v, want sent", n, f)
			}
		}
	}
	// Everyone reads: catch-up (already checked above) plus live frames;
	// collect the bodies each has, in order.
	for i, n := range names {
		c := clients[n]
		var got []string
		// Frames sent before n rejoined came as catch-up (read above);
		// what follows are joins and live messages of later members.
		want := sent[2*(i+1):]
		for len(got) < len(want) {
			f := c.Next()
			if f.Type() == "msg" {
				got = append(got, wstest.Body(f))
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s received %q live after rejoining, want %q", n, got, want)
		}
	}
	if strings.Contains(p.Output(), "porch") {
		t.Error("the server logged a room")
	}
}
