package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/onionchat/onionchat/internal/need"
)

// TestChromiumThreeMembersV2 runs protocol version 2 in three Chromium
// browser contexts against the real binary (LAN mode, room history on),
// through the recording proxy: alice, bob and carol chat; the safety codes
// each page shows for the others are the ones they show for themselves;
// carol leaves and alice and bob chat on, and nothing of it reaches carol's
// page; carol comes back as a new session, is told the backlog is
// unreadable, shows none of it, and alice and bob see her code changed;
// finally every stream the server sent, replayed into fresh clients that
// know the passphrase but no participant's private key, opens no message.
func TestChromiumThreeMembersV2(t *testing.T) {
	browser := Chromium(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "onionchat.toml")
	must(t, os.WriteFile(cfg, []byte("[hub]\nhistory_messages = 100\n"), 0o600))
	srv := Start(t, "--config", cfg, "--mode", "lan", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"))
	rec := NewRecorder(t, hostPort(srv.URL))
	url := "https://" + rec.Addr + "/#room=three"
	const pass = "marmot-kettle-saffron-77"

	alice, bob, carol := cdpTab{Tab(t, browser)}, cdpTab{Tab(t, browser)}, cdpTab{Tab(t, browser)}
	for _, tab := range []cdpTab{alice, bob, carol} {
		must(t, tab.navigate(url))
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

	// carol comes back: a new session with new keys. The room's backlog
	// reaches her page as ciphertext it cannot open, and it says so.
	_, err = carol.eval(`(document.getElementById("name").value = "", true)`)
	must(t, err)
	join(t, carol, "", "carol", pass)
	waitNotice(t, carol, "carol", "earlier messages are encrypted with keys from before you joined")
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

	for who, d := range pages {
		noCSPViolations(t, d, who)
	}
	neverSent(t, rec, pass, "morning, all", "morning alice", "hi both", after[0], after[1], "welcome back, carol")

	got := replayRecording(t, rec, pass, "three")
	if len(got.Messages) != 0 || got.Hellos == 0 || got.Frames == 0 || got.Streams < 4 {
		t.Fatalf("replaying the recording with the passphrase but no private key: %+v; want no message, and hellos opened", got)
	}
	t.Logf("replay with the passphrase only: %d streams, %d frames, %d hellos opened, %d notices, 0 messages", got.Streams, got.Frames, got.Hellos, got.Notices)
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
	Streams, Frames, Hellos, Notices int
	Messages                         []string
}

// replayRecording gives every stream of frames the server sent (one per
// connection) to web/jstest/replay.mjs, which replays each into a fresh
// version 2 client that knows the passphrase but holds none of the
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
	cmd := exec.CommandContext(ctx, node, filepath.Join("..", "..", "web", "jstest", "replay.mjs"))
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
