package cluster

import (
	"encoding/base64"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/onionchat/onionchat/internal/testing/wstest"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// sendCommit sends a commit frame for epoch, over the commit of seq if not 0.
func sendCommit(c *wstest.Client, epoch int64, body string, id, over int64) {
	f := map[string]any{"v": wstest.Version, "type": "commit", "epoch": epoch, "body": b64(body), "info": b64("info of " + body), "id": id}
	if over != 0 {
		f["over"] = over
	}
	c.Send(f)
}

// member is a raw client in TestCommitsAcrossInstances and what it got.
type member struct {
	name    string
	c       *wstest.Client
	commits map[int64][]string // epoch -> bodies of the commits relayed to it, in order
	seqs    map[int64][]int64  // epoch -> their seqs, as its instance numbered them
	left    int                // leave frames: an instance forgot the other
}

// until reads m's frames until done says it has what it waits for,
// recording every commit relayed to it, and returns the other frames it
// got meanwhile but presence (join, away, back, leave).
func (m *member) until(t *testing.T, done func(got []wstest.Frame) bool) []wstest.Frame {
	t.Helper()
	var got []wstest.Frame
	for !done(got) {
		f, err := m.c.Read(10 * time.Second)
		if err != nil {
			t.Fatalf("%s: %v (so far %v)", m.name, err, got)
		}
		switch f.Type() {
		case "leave":
			m.left++
			continue
		case "join", "away", "back":
			continue
		case "msg":
			if _, ok := f["commit"]; ok {
				e := f.Int("commit")
				m.commits[e] = append(m.commits[e], wstest.Body(f))
				m.seqs[e] = append(m.seqs[e], f.Int("seq"))
				continue
			}
		}
		got = append(got, f)
	}
	return got
}

func hasType(fs []wstest.Frame, typ string) (wstest.Frame, bool) {
	for _, f := range fs {
		if f.Type() == typ {
			return f, true
		}
	}
	return nil, false
}

// TestCommitsAcrossInstances: the Delivery Service holds across
// instances (docs/protocol.md §3.1, §15). alice and bob are on A, carol
// and dave on B. For each of 30 epochs alice and carol send a commit at
// the same moment: exactly one is taken, its sender gets sent, the other
// commit_conflict, and every other member of both instances gets that
// commit, once, and no other for the epoch. A commit over the one taken
// (its seq as B numbered it) is taken once from a member of B, and the
// room's GroupInfo on both instances is that of the last commit taken.
func TestCommitsAcrossInstances(t *testing.T) {
	// An instance that forgets the other serves alone (§15, "Cut off"):
	// a stall of this busy machine must not pass for that here.
	ins := startClusterDead(t, 2, testHub(), 5*time.Second)
	a, b := ins[0], ins[1]
	var ms []*member
	for i, name := range []string{"alice", "bob", "carol", "dave"} {
		c := wstest.Dial(t, ins[i/2].url)
		c.JoinOK("commits", name)
		ms = append(ms, &member{name: name, c: c, commits: map[int64][]string{}, seqs: map[int64][]int64{}})
	}
	alice, bob, carol, dave := ms[0], ms[1], ms[2], ms[3]
	waitFor(t, "both instances to see all four", 5*time.Second, func() bool { return a.h.Stats().Names == 4 && b.h.Stats().Names == 4 })

	const epochs = 30
	wins := map[string]int{}
	for e := int64(0); e < epochs; e++ {
		var wg sync.WaitGroup
		for i, m := range []*member{alice, carol} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sendCommit(m.c, e, fmt.Sprintf("%s's commit for %d", m.name, e), e*2+int64(i)+1, 0)
			}()
		}
		wg.Wait()
		// Each sender hears whether its commit was taken; the loser also
		// gets the winner's.
		answer := func(m *member) wstest.Frame {
			fs := m.until(t, func(got []wstest.Frame) bool {
				_, s := hasType(got, "sent")
				_, x := hasType(got, "error")
				return s || x
			})
			if f, ok := hasType(fs, "error"); ok && f.Str("code") != "commit_conflict" {
				t.Fatalf("epoch %d: %s got %v", e, m.name, f)
			}
			return fs[len(fs)-1]
		}
		fa, fc := answer(alice), answer(carol)
		var winner, loser *member
		switch {
		case fa.Type() == "sent" && fc.Type() == "error":
			winner, loser = alice, carol
		case fc.Type() == "sent" && fa.Type() == "error":
			winner, loser = carol, alice
		case fa.Type() == "sent":
			t.Fatalf("epoch %d: both commits were taken (instances linked: A sees %d, B sees %d; leave frames %d %d %d %d)", e, a.n.Peers(), b.n.Peers(), alice.left, bob.left, carol.left, dave.left)
		default:
			t.Fatalf("epoch %d: both commits were refused (%v, %v): the room's membership cannot change while two members try at once", e, fa, fc)
		}
		wins[winner.name]++
		want := fmt.Sprintf("%s's commit for %d", winner.name, e)
		for _, m := range ms {
			if m == winner {
				continue
			}
			m.until(t, func([]wstest.Frame) bool { return len(m.commits[e]) > 0 })
			if len(m.commits[e]) != 1 || m.commits[e][0] != want {
				t.Fatalf("epoch %d: %s got the commits %q, want only %q", e, m.name, m.commits[e], want)
			}
		}
		if len(loser.commits[e]) != 1 {
			t.Fatalf("epoch %d: the loser %s got %q", e, loser.name, loser.commits[e])
		}
	}
	t.Logf("%d epochs, two commits each at once: taken from alice (A) %d times, from carol (B) %d times", epochs, wins["alice"], wins["carol"])

	// dave, on B, finds the commit taken for the next epoch invalid: his
	// own, over it (as B numbered it), is taken, once.
	const e = epochs
	sendCommit(alice.c, e, "alice's junk", 100, 0)
	alice.until(t, func(got []wstest.Frame) bool { _, ok := hasType(got, "sent"); return ok })
	dave.until(t, func([]wstest.Frame) bool { return len(dave.commits[e]) == 1 })
	sendCommit(dave.c, e, "dave's over alice's", 101, dave.seqs[e][0])
	dave.until(t, func(got []wstest.Frame) bool { _, ok := hasType(got, "sent"); return ok })
	for _, m := range []*member{alice, bob, carol} {
		m.until(t, func([]wstest.Frame) bool { return len(m.commits[e]) == map[bool]int{true: 1, false: 2}[m == alice] })
		if got := m.commits[e][len(m.commits[e])-1]; got != "dave's over alice's" {
			t.Fatalf("%s got %q", m.name, m.commits[e])
		}
	}
	sendCommit(dave.c, e, "dave's twice", 102, dave.seqs[e][0])
	sendCommit(carol.c, e, "carol's late", 103, 0)
	for _, m := range []*member{dave, carol} {
		fs := m.until(t, func(got []wstest.Frame) bool { _, ok := hasType(got, "error"); return ok })
		if f, _ := hasType(fs, "error"); f.Str("code") != "commit_conflict" {
			t.Fatalf("%s got %v", m.name, f)
		}
	}

	// Nothing else was relayed: a last message reaches everyone after the
	// commits, and none came meanwhile.
	bob.c.Msg("the end")
	for _, m := range []*member{alice, carol, dave} {
		m.until(t, func(got []wstest.Frame) bool {
			f, ok := hasType(got, "msg")
			return ok && wstest.Body(f) == "the end"
		})
	}
	for _, m := range ms {
		for ep, cs := range m.commits {
			if want := map[bool]int{true: 2, false: 1}[ep == e]; len(cs) > want || (m.name == "dave" && ep == e && len(cs) != 1) {
				t.Errorf("%s got %d commits for epoch %d: %q", m.name, len(cs), ep, cs)
			}
		}
	}
	// The room's GroupInfo on both instances is dave's.
	for _, in := range ins {
		c := wstest.Dial(t, in.url)
		w := c.JoinOK("commits", "erin"+in.name)
		if got, _ := base64.StdEncoding.DecodeString(w.Str("info")); string(got) != "info of dave's over alice's" {
			t.Errorf("the room's GroupInfo on %s: %q", in.name, got)
		}
		c.Leave()
	}
}
