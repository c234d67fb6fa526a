package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/onionchat/onionchat/internal/wstest"
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
