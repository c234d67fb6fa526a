package cluster

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/onionchat/onionchat/hub"
	"github.com/onionchat/onionchat/internal/testing/tortest"
	"github.com/onionchat/onionchat/internal/testing/wstest"
	"github.com/onionchat/onionchat/web"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Test timings: instances beat every 100 ms and forget a peer silent for
// 500 ms, so a dead instance's names are free within 600 ms.
const (
	testBeat = 100 * time.Millisecond
	testDead = 500 * time.Millisecond
)

// instance is one onionchat instance in a test: a hub, its web handler on
// 127.0.0.1 and its NATS node.
type instance struct {
	name string
	url  string
	h    *hub.Hub
	n    *Node
	srv  *http.Server
	stop func()
}

func freePorts(t *testing.T, k int) []int {
	t.Helper()
	ports, err := tortest.FreePorts(k)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// startCluster starts k instances on 127.0.0.1, each routed to every
// other, and waits until each counts the others alive.
func startCluster(t *testing.T, k int, cfg hub.Config) []*instance {
	t.Helper()
	return startClusterDead(t, k, cfg, testDead)
}

// startClusterDead is startCluster with instances that forget a peer
// silent for dead.
func startClusterDead(t *testing.T, k int, cfg hub.Config, dead time.Duration) []*instance {
	t.Helper()
	ports := freePorts(t, k)
	out := make([]*instance, k)
	for i := range k {
		var peers []string
		for j, p := range ports {
			if j != i {
				peers = append(peers, "127.0.0.1:"+strconv.Itoa(p))
			}
		}
		out[i] = startInstance(t, string(rune('A'+i)), Config{Listen: "127.0.0.1:" + strconv.Itoa(ports[i]), Peers: peers,
			User: "onionchat", Password: "test links", Heartbeat: testBeat, DeadAfter: dead}, cfg)
	}
	waitFor(t, "every instance to see the others", 20*time.Second, func() bool {
		for _, in := range out {
			if in.n.Peers() != k-1 {
				return false
			}
		}
		return true
	})
	return out
}

func startInstance(t *testing.T, name string, o Config, cfg hub.Config) *instance {
	t.Helper()
	n, err := Start(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Cluster, cfg.Instance = n, n.ID()
	cfg.Wire = web.Wire{}
	cfg.ServerID = "local:cluster-test"
	h := hub.New(cfg)
	if err := n.Attach(h); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := ln.Addr().String()
	handler := web.New(web.Config{Hub: h, Hosts: []string{host}})
	srv := handler.Server()
	go srv.Serve(handler.Listener(ln))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	in := &instance{name: name, url: "http://" + host, h: h, n: n, srv: srv}
	var once sync.Once
	in.stop = func() {
		once.Do(func() {
			srv.Close()
			cancel()
			<-done
			n.Close()
		})
	}
	t.Cleanup(in.stop)
	return in
}

// kill stops an instance as a crash would: its link goes first, so the
// others hear nothing of its sessions ending.
func (in *instance) kill() {
	in.n.kill()
	in.stop()
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out after %v waiting for %s", d, what)
}

// testHub is a hub config for many clients from one address.
func testHub() hub.Config {
	return hub.Config{JoinRate: 1000, JoinBurst: 1000, MaxConnsPerPeer: 100, Rate: 10000, Burst: 10000}
}

// expectSkipping returns the next frame of type typ, skipping presence
// frames (join, away, back, leave) that may come first.
func expectSkipping(t *testing.T, c *wstest.Client, typ string) wstest.Frame {
	t.Helper()
	for {
		f := c.Next()
		switch f.Type() {
		case typ:
			return f
		case "join", "away", "back", "leave":
			continue
		}
		t.Fatalf("got %v, want %q", f, typ)
	}
}

// TestChatAcrossInstances: three members on three instances each send a
// burst with ids: every other member gets each sender's frames in order,
// once, with seqs rising on its instance, and every sender gets sent for
// each.
func TestChatAcrossInstances(t *testing.T) {
	ins := startCluster(t, 3, testHub())
	names := []string{"alice", "bob", "carol"}
	cs := make([]*wstest.Client, 3)
	for i, in := range ins {
		// Every instance knows the members so far before the next joins, so
		// that its welcome can list them all.
		waitFor(t, "every instance to know the members so far", 20*time.Second, func() bool {
			for _, in := range ins {
				if in.h.Stats().Names != i {
					return false
				}
			}
			return true
		})
		cs[i] = wstest.Dial(t, in.url)
		w := cs[i].JoinOK("across", names[i])
		if got := len(wstest.Names(w)); got != i+1 {
			t.Fatalf("%s's welcome on %s lists %v, want the %d members so far", names[i], in.name, wstest.Names(w), i+1)
		}
		for j := range i { // the others hear of the join, from any instance
			expectSkipping(t, cs[j], "join")
		}
	}
	const k = 200
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 1; n <= k; n++ {
				c.MsgID(fmt.Sprintf("%s %d", names[i], n), int64(n))
			}
		}()
	}
	wg.Wait()
	type result struct {
		got             map[string]int
		sent            int
		lastSeq         int64
		outOfOrder, dup int
	}
	res := make([]result, 3)
	var rw sync.WaitGroup
	for i, c := range cs {
		rw.Add(1)
		go func() {
			defer rw.Done()
			r := &res[i]
			r.got = map[string]int{}
			for r.sent < k || r.got[names[(i+1)%3]] < k || r.got[names[(i+2)%3]] < k {
				f, err := c.Read(20 * time.Second)
				if err != nil {
					t.Errorf("%s: %v (got %v, sent %d)", names[i], err, r.got, r.sent)
					return
				}
				switch f.Type() {
				case "msg":
					var who string
					var n int
					fmt.Sscanf(wstest.Body(f), "%s %d", &who, &n)
					switch {
					case n <= r.got[who]:
						r.dup++
					case n != r.got[who]+1:
						r.outOfOrder++
					}
					r.got[who] = max(r.got[who], n)
					if s := f.Int("seq"); s <= r.lastSeq {
						r.outOfOrder++
					} else {
						r.lastSeq = s
					}
					if f.Str("from") != who {
						t.Errorf("%s: frame of %s says from %q", names[i], who, f.Str("from"))
					}
				case "sent":
					r.sent++
				}
			}
		}()
	}
	rw.Wait()
	for i, r := range res {
		for j, other := range names {
			if j != i && r.got[other] != k {
				t.Errorf("%s on %s got %d of %s's %d frames", names[i], ins[i].name, r.got[other], other, k)
			}
		}
		if r.dup+r.outOfOrder != 0 || r.sent != k {
			t.Errorf("%s: %d duplicated, %d out of order, %d sent", names[i], r.dup, r.outOfOrder, r.sent)
		}
	}
	// Direct frames (key handoffs) cross instances too.
	cs[0].MsgTo("for bob only", "bob")
	if f := cs[1].Expect("msg"); wstest.Body(f) != "for bob only" || f.Str("to") != "bob" || f.Str("from") != "alice" {
		t.Fatalf("bob got %v", f)
	}
	// And a file's chunks (bulk: no seq, not kept).
	cs[2].SendRaw([]byte(`{"v":2,"type":"msg","body":"Y2h1bms=","bulk":true}`))
	for _, c := range cs[:2] {
		if f := c.Expect("msg"); wstest.Body(f) != "chunk" || f["bulk"] != true || f.Int("seq") != -1 || f.Str("from") != "carol" {
			t.Fatalf("got %v", f)
		}
	}
}

// TestNamesAcrossInstances: a name taken on A, or one that looks like it,
// is refused on B; a room full on the cluster is full on every instance;
// two instances asked for one name at once never both give it.
func TestNamesAcrossInstances(t *testing.T) {
	cfg := testHub()
	cfg.MaxMembers = 3
	ins := startCluster(t, 2, cfg)
	a, b := ins[0], ins[1]
	alice := wstest.Dial(t, a.url)
	alice.JoinOK("names", "Aco")
	for _, tc := range []struct{ name, code string }{
		{"aco", hub.CodeNameTaken},
		{"ACO", hub.CodeNameTaken},
		{"\u0410\u0441\u043e", "name_confusable"}, // Асо, in Cyrillic
	} {
		c := wstest.Dial(t, b.url)
		c.Join("names", tc.name)
		c.ExpectError(tc.code)
	}
	bob := wstest.Dial(t, b.url)
	bob.JoinOK("names", "bob")
	carol := wstest.Dial(t, a.url)
	carol.JoinOK("names", "carol")
	dave := wstest.Dial(t, b.url)
	dave.Join("names", "dave")
	dave.ExpectError("room_full")

	// Races: the same new name asked on both instances at once.
	for round := range 20 {
		room := "race" + strconv.Itoa(round)
		ca, cb := wstest.Dial(t, a.url), wstest.Dial(t, b.url)
		ca.Join(room, "erin")
		cb.Join(room, "erin")
		won := 0
		for _, c := range []*wstest.Client{ca, cb} {
			if f := c.Next(); f.Type() == "welcome" {
				won++
			} else if f.Str("code") != hub.CodeNameTaken {
				t.Fatalf("round %d: got %v", round, f)
			}
		}
		if won > 1 {
			t.Fatalf("round %d: both instances gave the name erin", round)
		}
		ca.Close()
		cb.Close()
	}
}

// TestInstanceDies: alice is on A, bob and carol on B. A dies without a
// word: bob and carol keep chatting, hear that alice left within the
// bound (DeadAfter + Heartbeat), and her name is free again on B.
func TestInstanceDies(t *testing.T) {
	ins := startCluster(t, 2, testHub())
	a, b := ins[0], ins[1]
	alice := wstest.Dial(t, a.url)
	alice.JoinOK("dies", "alice")
	bob := wstest.Dial(t, b.url)
	bob.JoinOK("dies", "bob")
	carol := wstest.Dial(t, b.url)
	carol.JoinOK("dies", "carol")
	expectSkipping(t, bob, "join")
	a.n.kill()
	killed := time.Now()
	go a.stop()
	// A join on B right away is not held up by A: no instance is left
	// to ask.
	dave := wstest.Dial(t, b.url)
	dave.JoinOK("dies", "dave")
	if d := time.Since(killed); d > testDead {
		t.Errorf("a join took %v after A died", d)
	}
	f := expectSkipping(t, bob, "leave")
	took := time.Since(killed)
	if code := alice.ExpectClose(); code != 1001 && code != -1 {
		t.Fatalf("alice's connection closed %d", code)
	}
	if f.Str("name") != "alice" {
		t.Fatalf("bob got %v", f)
	}
	if bound := testDead + 2*testBeat; took > bound {
		t.Errorf("alice left %v after A died, over the bound %v", took, bound)
	}
	t.Logf("a dead instance's sessions left after %v (bound %v + %v)", took.Round(time.Millisecond), testDead, testBeat)
	for {
		if f := carol.Next(); f.Type() == "leave" && f.Str("name") == "alice" {
			break
		}
	}
	bob.Msg("still here")
	if f := expectSkipping(t, carol, "msg"); wstest.Body(f) != "still here" {
		t.Fatalf("carol got %v", f)
	}
	again := wstest.Dial(t, b.url)
	again.JoinOK("dies", "alice")
}

// TestMoveToAnotherInstance: alice's connection to A drops; she comes
// back through B with her resume token, as Onionbalance may route her.
// B cannot resume A's session (its seq numbers are A's), so she gets a
// new session under her name with every frame B keeps for the room,
// what bob sent while she was away included; bob sees her leave and
// join; her old token no longer works on A.
func TestMoveToAnotherInstance(t *testing.T) {
	ins := startCluster(t, 2, testHub())
	a, b := ins[0], ins[1]
	alice := wstest.Dial(t, a.url)
	w := alice.JoinOK("move", "alice")
	bob := wstest.Dial(t, b.url)
	bob.JoinOK("move", "bob")
	expectSkipping(t, alice, "join")
	bob.Msg("before")
	if f := alice.Expect("msg"); wstest.Body(f) != "before" {
		t.Fatalf("alice got %v", f)
	}
	alice.Close() // dropped: away
	if f := expectSkipping(t, bob, "away"); f.Str("name") != "alice" {
		t.Fatalf("bob got %v", f)
	}
	bob.Msg("while away")
	moved := wstest.Dial(t, b.url)
	moved.Resume("move", w, 1)
	nw := moved.Expect("welcome")
	if nw.Str("you") != "alice" || nw.Str("resumed") != "" || nw.Int("catchup") != 2 {
		t.Fatalf("welcome on B: %v", nw)
	}
	for _, want := range []string{"before", "while away"} {
		if f := moved.Expect("msg"); wstest.Body(f) != want || f["old"] != true {
			t.Fatalf("catch-up: got %v, want %q", f, want)
		}
	}
	if f := bob.Expect("leave"); f.Str("sid") != w.Str("sid") {
		t.Fatalf("bob got %v", f)
	}
	if f := bob.Expect("join"); f.Str("name") != "alice" {
		t.Fatalf("bob got %v", f)
	}
	moved.Msg("hello from B")
	if f := bob.Expect("msg"); wstest.Body(f) != "hello from B" {
		t.Fatalf("bob got %v", f)
	}
	back := wstest.Dial(t, a.url)
	back.Resume("move", w, 2)
	back.ExpectError(hub.CodeNameTaken)
}

// TestMoveFromDeadInstance: a member of an instance that dies takes her
// name back on another at once with her resume token (her join waits
// until the dead instance is forgotten), and gets the room's kept frames;
// the others see her leave and join again.
func TestMoveFromDeadInstance(t *testing.T) {
	ins := startCluster(t, 3, testHub())
	a, b, c := ins[0], ins[1], ins[2]
	alice := wstest.Dial(t, a.url)
	alice.JoinOK("dead", "alice")
	bob := wstest.Dial(t, b.url)
	bob.JoinOK("dead", "bob")
	carol := wstest.Dial(t, c.url)
	w := carol.JoinOK("dead", "carol")
	waitFor(t, "alice to see both", 5*time.Second, func() bool { return a.h.Stats().Names == 3 })

	for _, body := range []string{"one", "two"} {
		alice.MsgID(body, 1)
		expectSkipping(t, alice, "sent")
		for _, o := range []*wstest.Client{bob, carol} {
			if f := expectSkipping(t, o, "msg"); wstest.Body(f) != body {
				t.Fatalf("got %v, want %q", f, body)
			}
		}
	}
	c.kill()
	moved := wstest.Dial(t, b.url)
	moved.Resume("dead", w, 2)
	nw := expectSkipping(t, moved, "welcome")
	if nw.Str("you") != "carol" || nw["resumed"] != nil || nw.Int("catchup") != 2 {
		t.Fatalf("carol on B: %v", nw)
	}
	for _, want := range []string{"one", "two"} {
		if f := moved.Expect("msg"); wstest.Body(f) != want || f["old"] != true || f.Str("from") != "alice" {
			t.Fatalf("catch-up: got %v, want %q", f, want)
		}
	}
	if f := alice.Expect("leave"); f.Str("sid") != w.Str("sid") {
		t.Fatalf("alice got %v", f)
	}
	if f := alice.Expect("join"); f.Str("name") != "carol" || f.Str("sid") != nw.Str("sid") {
		t.Fatalf("alice got %v", f)
	}
}
