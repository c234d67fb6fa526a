package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/onionchat/onionchat/internal/testing/need"
)

// TestChromiumThreeMembers runs three Chromium browser contexts against
// the real binary (LAN mode), each through its own recording proxy:
//   - alice, bob and carol chat; every page shows for each member the code
//     that member's page shows as its own;
//   - carol's link is cut, first by a TCP reset and then silently
//     (half-open), while alice and bob speak for 20 s: their messages show
//     "waiting", and once carol is back (her page reconnects by itself and
//     resumes), "delivered"; carol shows all of them, in order, once;
//   - carol leaves; alice and bob chat on, and nothing of it reaches her
//     page; carol comes back as a new page session: she is told earlier
//     messages cannot be read, shows none of them, and alice and bob see her
//     code changed;
//   - every stream the server sent, replayed into fresh clients that know
//     the passphrase but no participant's private key, opens no message.
func TestChromiumThreeMembers(t *testing.T) {
	browser := Chromium(t)
	lan := startLANRoom(t, 3, "")
	const pass = "marmot-kettle-saffron-77"
	alice, bob, carol := cdpTab{Tab(t, browser)}, cdpTab{Tab(t, browser)}, cdpTab{Tab(t, browser)}
	for i, tab := range []cdpTab{alice, bob, carol} {
		must(t, tab.navigate(lan.url(i, "three friends")))
	}
	join(t, alice, "", "alice", pass)
	join(t, bob, "", "bob", pass)
	join(t, carol, "", "carol", pass)
	pages := map[string]driver{"alice": alice, "bob": bob, "carol": carol}
	sameSafetyCodes(t, pages)

	send(t, alice, "morning, all")
	send(t, bob, "morning alice")
	send(t, carol, "hi both")
	for who, d := range pages {
		for _, m := range [][2]string{{"alice", "morning, all"}, {"bob", "morning alice"}, {"carol", "hi both"}} {
			if who != m[0] {
				waitMessage(t, d, who, m[0], m[1])
			}
		}
	}

	// carol's link is cut while the others speak for 20 s.
	carolRec := lan.recs[2]
	for _, cut := range []struct {
		name string
		how  int32
	}{{"reset", CutReset}, {"half-open", CutSilent}} {
		carolRec.Cut(cut.how)
		var said []string
		start := time.Now()
		for i := 0; time.Since(start) < 20*time.Second; i++ {
			for _, p := range []struct {
				name string
				tab  cdpTab
			}{{"alice", alice}, {"bob", bob}} {
				text := fmt.Sprintf("%s %s %d", cut.name, p.name, i)
				send(t, p.tab, text)
				said = append(said, p.name+": "+text)
			}
			time.Sleep(2 * time.Second)
		}
		for who, tab := range map[string]cdpTab{"alice": alice, "bob": bob} {
			must(t, tab.waitFor(who+"'s messages to show waiting", `[...document.querySelectorAll("#messages li.own")].filter(li => li.textContent.includes(`+js(cut.name+" ")+`)).every(li => li.dataset.delivery === "waiting")`, waitShort))
		}
		carolRec.Restore()
		must(t, carol.waitFor("carol back", `document.documentElement.dataset.state === "ready"`, waitLong))
		// Each sender's messages in the order sent, once (between senders,
		// the order the relay took them in).
		for _, sender := range []string{"alice", "bob"} {
			var want []string
			for _, x := range said {
				if strings.HasPrefix(x, sender+": ") {
					want = append(want, x)
				}
			}
			mustSee(t, carol, "carol", carol.waitFor("carol to show all of "+sender+"'s, in order, once (after "+cut.name+")", fmt.Sprintf(`(() => {
				const got = [...document.querySelectorAll("#messages li.msg")].map(li => li.querySelector(".sender").textContent + ": " + li.querySelector(".text").textContent).filter(x => x.startsWith(%s) && x.includes(%s));
				return JSON.stringify(got) === JSON.stringify([%s]);
			})()`, js(sender+": "), js(" "+cut.name+" "), strings.Join(mapStrings(want, js), ",")), waitLong))
		}
		for who, tab := range map[string]cdpTab{"alice": alice, "bob": bob} {
			must(t, tab.waitFor(who+"'s messages to show delivered", `[...document.querySelectorAll("#messages li.own")].filter(li => li.textContent.includes(`+js(cut.name+" ")+`)).every(li => li.dataset.delivery === "delivered")`, waitLong))
		}
	}
	if v, _ := carol.eval(hasNoticeJS("did not reach you")); v == true {
		t.Error("carol was told messages did not reach her, though every one came")
	}
	carolCode, err := carol.eval(`document.getElementById("my-code").textContent`)
	must(t, err)

	// carol leaves; alice and bob start fresh chains and chat on.
	must(t, carol.click("leave"))
	must(t, carol.waitFor("carol's join form", `document.documentElement.dataset.state === "join"`, waitShort))
	waitNotice(t, alice, "alice", "carol left.")
	waitNotice(t, bob, "bob", "carol left.")
	after := []string{"carol has gone", "so she cannot read this"}
	send(t, alice, after[0])
	waitMessage(t, bob, "bob", "alice", after[0])
	send(t, bob, after[1])
	waitMessage(t, alice, "alice", "bob", after[1])
	for _, text := range after {
		if v, _ := carol.eval(`document.body.textContent.includes(` + js(text) + `)`); v != false {
			t.Errorf("carol's page shows %q, sent after she left", text)
		}
	}

	// carol comes back: a new page session with new keys. The room's kept
	// frames reach her page as ciphertext it cannot open, and it says so.
	must(t, carol.eval2(`document.getElementById("name").value = ""`))
	join(t, carol, "", "carol", pass)
	waitNotice(t, carol, "carol", "were sent before you joined")
	for _, text := range append(after, "morning, all", "hi both") {
		if ok, _ := carol.eval(`document.querySelector("#messages").textContent.includes(` + js(text) + `)`); ok != false {
			t.Errorf("carol, back as a new session, shows %q from before she joined", text)
		}
	}
	waitNotice(t, alice, "alice", "carol’s safety code changed (was "+fmt.Sprint(carolCode))
	waitNotice(t, bob, "bob", "carol’s safety code changed")
	sameSafetyCodes(t, pages)
	send(t, alice, "welcome back, carol")
	waitMessage(t, carol, "carol", "alice", "welcome back, carol")
	waitMessage(t, bob, "bob", "alice", "welcome back, carol")
	send(t, carol, "thanks")
	waitMessage(t, bob, "bob", "carol", "thanks")
	waitMessage(t, alice, "alice", "carol", "thanks")
	if v, _ := alice.eval(`[...document.querySelectorAll("#messages li.msg")].filter(li => li.querySelector(".sender").textContent === "carol" && li.textContent.includes("thanks")).every(li => li.querySelector(".tag.warn") !== null)`); v != true {
		t.Error("alice's page does not mark carol's message after her code changed")
	}

	for who, d := range pages {
		noCSPViolations(t, d, who)
	}
	got := replayResult{}
	for i, rec := range lan.recs {
		neverSent(t, rec, pass, "three friends", "morning, all", "morning alice", "hi both", after[0], after[1], "welcome back, carol")
		r := replayRecording(t, rec, pass, "three friends")
		t.Logf("person %d: replay with the passphrase only: %d streams, %d frames, %d bodies opened, %d notices, %d messages", i, r.Streams, r.Frames, r.Opened, r.Notices, len(r.Messages))
		got.Streams += r.Streams
		got.Frames += r.Frames
		got.Opened += r.Opened
		got.Messages = append(got.Messages, r.Messages...)
	}
	if len(got.Messages) != 0 || got.Opened == 0 || got.Frames == 0 || got.Streams < 4 {
		t.Fatalf("replaying the recordings with the passphrase but no private key: %+v; want no message, and bodies opened (the passphrase was right)", got)
	}
}

func mapStrings(in []string, f func(any) string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = f(s)
	}
	return out
}

var safetyCodeRe = regexp.MustCompile(`^\d{5}( \d{5}){4}$`)

// codeShownJS is the safety code a page's member list shows for name, or
// "" while it has none.
func codeShownJS(name string) string {
	return fmt.Sprintf(`(() => {
		const li = [...document.querySelectorAll("#members li")].find(li => li.querySelector(".name").textContent === %s);
		const c = li && li.querySelector(".code:not(.none)");
		return c ? c.textContent : "";
	})()`, js(name))
}

// sameSafetyCodes checks that every page shows, for every member, the code
// that member's own page shows as its own, and that codes differ.
func sameSafetyCodes(t *testing.T, pages map[string]driver) {
	t.Helper()
	own := map[string]string{}
	seen := map[string]string{}
	for name, d := range pages {
		v, err := d.eval(`document.getElementById("my-code").textContent`)
		must(t, err)
		code, _ := v.(string)
		if !safetyCodeRe.MatchString(code) {
			t.Fatalf("%s's own safety code is %q, want 5 groups of 5 digits", name, code)
		}
		if other, ok := seen[code]; ok {
			t.Fatalf("%s and %s show the same safety code %s", name, other, code)
		}
		seen[code] = name
		own[name] = code
	}
	for viewer, d := range pages {
		for name, code := range own {
			mustSee(t, d, viewer, d.waitFor(fmt.Sprintf("%s to show %s's safety code", viewer, name), codeShownJS(name)+` !== ""`, waitShort))
			v, err := d.eval(codeShownJS(name))
			must(t, err)
			if v != code {
				t.Errorf("%s shows %s's safety code as %v; %s's page shows %s", viewer, name, v, name, code)
			}
		}
	}
}

type replayResult struct {
	Streams, Frames, Opened, Notices int
	Messages                         []string
}

// replayRecording gives every stream of frames the server sent (one per
// connection) to web/jstest/replay.mjs, which replays each into a fresh
// version 3 client that knows the passphrase but holds none of the
// participants' private keys.
func replayRecording(t *testing.T, rec *Recorder, pass, room string) replayResult {
	t.Helper()
	node := need.Tool(t, "node", "nodejs")
	var streams [][]map[string]any
	server := ""
	for _, b := range rec.Received() {
		if bytes.HasPrefix(b, []byte("HTTP/")) {
			streams = append(streams, nil) // the raw bytes of a new connection come first
			continue
		}
		var f map[string]any
		if json.Unmarshal(b, &f) != nil || len(streams) == 0 {
			continue
		}
		if f["type"] == "welcome" {
			server, _ = f["server"].(string)
		}
		streams[len(streams)-1] = append(streams[len(streams)-1], f)
	}
	var ws [][]map[string]any
	for _, s := range streams {
		if len(s) > 0 {
			ws = append(ws, s)
		}
	}
	in, err := json.Marshal(map[string]any{"passphrase": pass, "server": server, "room": room, "streams": ws})
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("..", "..", "..", "web", "jstest", "replay.mjs"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("replay.mjs: %v\n%s", err, stderr.String())
	}
	var r replayResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("replay.mjs printed %q: %v", out, err)
	}
	return r
}
