package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// cdpTab drives one Chromium tab.
type cdpTab struct{ ctx context.Context }

func (c cdpTab) eval(expr string) (any, error) {
	ctx, cancel := context.WithTimeout(c.ctx, waitShort)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[any](expr))
}

// eval2 evaluates an expression for its effect.
func (c cdpTab) eval2(expr string) error { _, err := c.eval("(" + expr + ", true)"); return err }

func (c cdpTab) waitFor(what, expr string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(c.ctx, d)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(d))); err != nil {
		return errorf("waiting for %s: %v", what, err)
	}
	return nil
}

func (c cdpTab) typeInto(id, text string) error {
	ctx, cancel := context.WithTimeout(c.ctx, waitShort)
	defer cancel()
	return chromedp.Do(ctx, chromedp.Focus(chromedp.ID(id)), chromedp.SendKeys(chromedp.ID(id), text))
}

// enter presses Enter in the element. It sends the key down and up
// without CDP's separate "char" event, which would insert a line break
// even though the page cancelled the keydown, as no real keyboard does.
func (c cdpTab) enter(id string) error {
	ctx, cancel := context.WithTimeout(c.ctx, waitShort)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.ID(id))); err != nil {
		return err
	}
	for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeRawKeyDown, input.DispatchKeyEventTypeKeyUp} {
		if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, input.DispatchKeyEventParams{
			Type: typ, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13,
		}); err != nil {
			return err
		}
	}
	return nil
}

func (c cdpTab) click(id string) error {
	ctx, cancel := context.WithTimeout(c.ctx, waitShort)
	defer cancel()
	return chromedp.Do(ctx, chromedp.Click(chromedp.ID(id)))
}

func (c cdpTab) screenshot() ([]byte, error) {
	ctx, cancel := context.WithTimeout(c.ctx, waitShort)
	defer cancel()
	return chromedp.Run(ctx, chromedp.CaptureScreenshot())
}

func (c cdpTab) viewport(width, height int) error {
	ctx, cancel := context.WithTimeout(c.ctx, waitShort)
	defer cancel()
	return chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), int64(height)))
}

func (c cdpTab) wheel(selector string, dy int) error {
	ctx, cancel := context.WithTimeout(c.ctx, waitShort)
	defer cancel()
	xy, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](fmt.Sprintf(`(() => {
		const r = document.querySelector(%s).getBoundingClientRect();
		return [(r.left + r.right) / 2, (r.top + r.bottom) / 2];
	})()`, js(selector))))
	if err != nil {
		return err
	}
	// By hand: the typed parameters leave out a zero deltaX, which
	// Chromium requires.
	return chromedp.Do(ctx, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		return chromedp.Void{}, tg.Call(ctx, "Input.dispatchMouseEvent", map[string]any{
			"type": "mouseWheel", "x": xy[0], "y": xy[1], "deltaX": 0, "deltaY": dy,
		}, nil)
	})
}

func (c cdpTab) reload() error {
	ctx, cancel := context.WithTimeout(c.ctx, waitShort)
	defer cancel()
	return chromedp.Do(ctx, chromedp.Reload())
}

func (c cdpTab) navigate(url string) error {
	ctx, cancel := context.WithTimeout(c.ctx, waitShort)
	defer cancel()
	return chromedp.Do(ctx, chromedp.Navigate(url))
}

// TestChromiumChat drives the real page in real Chromium against the real
// binary in LAN mode, each person through a recording proxy of their own:
//   - two friends chat both ways, and their messages show "delivered";
//   - a third with a wrong passphrase is alone in another room: no member,
//     no message, another check code, and the friends see nobody new;
//   - an outsider's raw client that joins by the room's name is refused,
//     and one with a made-up room id sees nobody;
//   - a look-alike of a present member's name is refused, with a reason;
//   - markup in messages and names stays text; clicking a sender shows the
//     code the message was signed with;
//   - the server restarts twice, and each time one friend is back first and
//     speaks at once: the other, back later, gets every message once;
//   - no CSP violation, and neither a message, the passphrase nor the room
//     name ever reaches the server.
func TestChromiumChat(t *testing.T) {
	browser := Chromium(t)
	lan := startLANRoom(t, 4, "")
	const room = "e2e room"
	const pass = "grapefruit-osprey-lantern-42"
	const xssName = `<img src=x onerror=alert(1)>`
	alice, bob, mallory, eve := cdpTab{Tab(t, browser)}, cdpTab{Tab(t, browser)}, cdpTab{Tab(t, browser)}, cdpTab{Tab(t, browser)}
	tabs := []cdpTab{alice, bob, mallory, eve}
	// alice's screen is a phone's: 360 px wide.
	must(t, chromedp.Do(alice.ctx, chromedp.EmulateViewport(360, 740)))
	for i, tab := range tabs {
		must(t, tab.navigate(lan.url(i, room)))
	}
	// The room comes from the link's fragment.
	if v, _ := alice.eval(`document.getElementById("room").value`); v != room {
		t.Fatalf("room field %q, want the room from the link", v)
	}
	join(t, alice, "", "alice", pass)
	join(t, bob, "", xssName, pass)
	join(t, mallory, "", "mallory", "not the passphrase")

	send(t, alice, "hello from alice")
	waitMessage(t, bob, "bob", "alice", "hello from alice")
	send(t, bob, "hello from bob")
	waitMessage(t, alice, "alice", xssName, "hello from bob")
	must(t, alice.waitFor("alice's message to show delivered", `document.querySelector("#messages li.own[data-delivery=delivered]") !== null`, waitShort))

	// mallory, with a wrong passphrase, is alone in another room.
	must(t, mallory.waitFor("mallory to be told she is alone", `!document.getElementById("alone").hidden`, waitShort))
	for who, tab := range map[string]cdpTab{"alice": alice, "bob": bob, "mallory": mallory} {
		want := 2
		if who == "mallory" {
			want = 1
		}
		if n, _ := tab.eval(`document.querySelectorAll("#members li").length`); n != float64(want) {
			t.Errorf("%s's member list has %v entries, want %d", who, n, want)
		}
	}
	if ok, _ := mallory.eval(`document.querySelectorAll("#messages li.msg").length === 0`); ok != true {
		t.Fatal("mallory, with the wrong passphrase, sees messages")
	}
	checkA, _ := alice.eval(`document.getElementById("check-code").textContent`)
	checkB, _ := bob.eval(`document.getElementById("check-code").textContent`)
	checkM, _ := mallory.eval(`document.getElementById("check-code").textContent`)
	if checkA != checkB || checkA == checkM || !regexp.MustCompile(`^\d{4} \d{4}$`).MatchString(fmt.Sprint(checkA)) {
		t.Errorf("check codes: alice %v, bob %v, mallory %v; want the friends' equal and mallory's different", checkA, checkB, checkM)
	}

	// An outsider's raw client: the room's name is not a room; a made-up id is an empty room.
	outsider := lan.raw(t)
	outsider.Send(`{"v":2,"type":"join","room":"e2e room","name":"snoop"}`)
	if f := outsider.Expect("error"); f["code"] != "bad_room" {
		t.Fatalf("joining by the room's name: %v, want bad_room", f)
	}
	outsider.Send(`{"v":2,"type":"join","room":"AAAAAAAAAAAAAAAAAAAAAA","name":"snoop"}`)
	w := outsider.Expect("welcome")
	if ms, _ := w["members"].([]any); len(ms) != 1 {
		t.Fatalf("the outsider's room has members %v", w["members"])
	}

	// A look-alike of a present name is refused with the relay's reason.
	for _, lookalike := range []string{"Аlice", "ALICE"} { // Cyrillic А; case
		must(t, eve.waitFor("the join form", `document.documentElement.dataset.state === "join"`, waitShort))
		must(t, eve.eval2(`document.getElementById("name").value = ""`))
		must(t, eve.typeInto("name", lookalike))
		must(t, eve.typeInto("passphrase", pass))
		must(t, eve.click("join"))
		must(t, eve.waitFor("eve's join refused", `document.documentElement.dataset.state === "join" && document.getElementById("join-error").textContent !== ""`, waitLong))
	}
	if e, _ := eve.eval(`document.getElementById("join-error").textContent + " / " + document.getElementById("passphrase").value`); !strings.HasSuffix(strings.ToLower(fmt.Sprint(e)), "uses that name. / ") {
		t.Errorf("after a refused join: %q; want the reason and an empty passphrase field", e)
	}

	// Markup is text, as a message and as a name.
	const xssMsg = `<img src=x onerror="document.title='pwned'"><b>bold?</b>`
	send(t, alice, xssMsg)
	waitMessage(t, bob, "bob", "alice", xssMsg)
	for who, tab := range map[string]cdpTab{"alice": alice, "bob": bob, "mallory": mallory} {
		n, err := tab.eval(`document.querySelectorAll("#messages img, #messages b, #members img").length`)
		if err != nil || n != float64(0) {
			t.Errorf("%s: markup from a message or name became elements (%v, %v)", who, n, err)
		}
		if title, _ := tab.eval(`document.title`); title == "pwned" {
			t.Errorf("%s: injected script ran", who)
		}
	}
	must(t, alice.waitFor("bob's name as text in alice's member list", `[...document.querySelectorAll("#members li .name")].some(n => n.textContent === `+js(xssName)+`)`, waitShort))
	// The code a message was signed with shows on demand.
	code, _ := alice.eval(`document.getElementById("my-code").textContent`)
	must(t, bob.eval2(`document.querySelector("#messages li.msg:not(.own) .sender").click()`))
	if v, _ := bob.eval(`document.querySelector("#messages li.msg:not(.own) .msgcode").textContent`); !strings.Contains(fmt.Sprint(v), fmt.Sprint(code)) {
		t.Errorf("bob, clicking alice's name on her message, sees %q; alice's code is %v", v, code)
	}

	// The server restarts, twice; each time one of them is back first and
	// speaks at once, the other's link still down.
	for round, pair := range [][2]cdpTab{{alice, bob}, {bob, alice}} {
		first, later := pair[0], pair[1]
		names := map[cdpTab]string{alice: "alice", bob: xssName}
		laterRec := map[cdpTab]*Recorder{alice: lan.recs[0], bob: lan.recs[1]}[later]
		lan.restart(t, func() { laterRec.Cut(CutReset) })
		must(t, first.waitFor("the first back", `document.documentElement.dataset.state === "ready"`, waitLong))
		// Every mark the first's messages get, in order (issue 23: a message
		// said "reached nobody" while the other was reconnecting).
		must(t, first.eval2(`(() => { window.__marks = []; new MutationObserver((ms) => ms.forEach((m) => window.__marks.push(m.target.dataset.delivery)))
			.observe(document.getElementById("messages"), { subtree: true, attributes: true, attributeFilter: ["data-delivery"] }); })()`))
		var said []string
		for i := range 3 {
			text := fmt.Sprintf("round %d: %d, right after the restart", round, i)
			send(t, first, text)
			said = append(said, text)
			time.Sleep(time.Second)
		}
		laterRec.Restore()
		must(t, later.waitFor("the later back", `document.documentElement.dataset.state === "ready"`, waitLong))
		for _, text := range said {
			waitMessage(t, later, "the later", names[first], text)
		}
		n, _ := later.eval(fmt.Sprintf(`[...document.querySelectorAll("#messages li.msg .text")].filter(e => e.textContent.startsWith("round %d:")).length`, round))
		if n != float64(len(said)) {
			t.Errorf("round %d: the later one shows %v of the first's %d messages (shown twice?)", round, n, len(said))
		}
		must(t, first.waitFor("the first's messages delivered", fmt.Sprintf(`[...document.querySelectorAll("#messages li.msg.own")].filter((li) => li.textContent.includes("round %d:")).every((li) => li.dataset.delivery === "delivered")`, round), waitLong))
		if marks, _ := first.eval(`window.__marks.join(" ")`); strings.Contains(fmt.Sprint(marks), "nobody") {
			t.Errorf("round %d: the first's messages were marked %v: never \"reached nobody\" while the other reconnects", round, marks)
		}
		send(t, later, fmt.Sprintf("round %d: back too", round))
		waitMessage(t, first, "the first", names[later], fmt.Sprintf("round %d: back too", round))
	}

	// eve keeps her safety code in this browser: a reload keeps it, and
	// alice is not told it changed.
	must(t, eve.eval2(`document.getElementById("name").value = ""`))
	must(t, eve.eval2(`document.getElementById("keep-code").checked = true`))
	join(t, eve, "", "eve", pass)
	eveCode, err := eve.eval(`document.getElementById("my-code").textContent`)
	must(t, err)
	must(t, eve.reload())
	must(t, eve.waitFor("the box still ticked after the reload", `document.getElementById("keep-code").checked`, waitShort))
	join(t, eve, "", "eve", pass)
	if again, _ := eve.eval(`document.getElementById("my-code").textContent`); again != eveCode {
		t.Errorf("eve's code after a reload with the box ticked: %v, before %v", again, eveCode)
	}
	must(t, alice.waitFor("alice to show eve's code", codeShownJS("eve")+` === `+js(eveCode), waitShort))
	if v, _ := alice.eval(hasNoticeJS("eve’s safety code changed")); v != false {
		t.Error("alice was told eve's code changed, though eve kept it")
	}

	for who, tab := range map[string]cdpTab{"alice": alice, "bob": bob, "mallory": mallory, "eve": eve} {
		noCSPViolations(t, tab, who)
	}
	if w, _ := alice.eval(`document.documentElement.scrollWidth <= 360`); w != true {
		t.Error("alice's page scrolls sideways at 360 px")
	}
	keepScreenshot(t, alice, "chromium-chat-360px.png")

	for _, rec := range lan.recs {
		neverSent(t, rec, pass, "not the passphrase", room, "hello from alice", "hello from bob", "right after the restart", "bold?")
	}
}
