package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// screen is a viewport size the layout is checked at.
type screen struct {
	name          string
	width, height int
}

var screens = []screen{{"desktop", 1280, 800}, {"phone", 390, 844}}

// shownFn is a page function that says why the element matching a CSS
// selector is not wholly shown to a person looking at the screen: ""
// when it is. It must be drawn, inside the viewport, not clipped by any
// ancestor that clips (overflow other than visible), not covered at its
// centre by another element, and its own content must not be cut off.
const shownFn = `(sel) => {
	const e = document.querySelector(sel);
	if (!e) return "missing";
	const r = e.getBoundingClientRect();
	if (r.width < 1 || r.height < 1) return "not drawn";
	const box = (x) => "[" + [x.left, x.top, x.right, x.bottom].map(Math.round).join(",") + "]";
	const vw = document.documentElement.clientWidth, vh = document.documentElement.clientHeight;
	if (r.top < -0.5 || r.left < -0.5 || r.bottom > vh + 0.5 || r.right > vw + 0.5) return "outside the " + vw + "×" + vh + " viewport at " + box(r);
	for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
		const s = getComputedStyle(a);
		if (s.overflowX === "visible" && s.overflowY === "visible") continue;
		const p = a.getBoundingClientRect();
		if (r.top < p.top - 0.5 || r.bottom > p.bottom + 0.5 || r.left < p.left - 0.5 || r.right > p.right + 0.5)
			return "clipped by " + a.tagName.toLowerCase() + (a.id ? "#" + a.id : "") + " " + box(p) + ", it is at " + box(r);
	}
	const s = getComputedStyle(e);
	if (s.display !== "inline" && (s.overflowX !== "visible" || s.overflowY !== "visible") && e.tagName !== "TEXTAREA" && e.tagName !== "OL" &&
		(e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1))
		return "its content is cut: " + e.scrollWidth + "×" + e.scrollHeight + " in " + e.clientWidth + "×" + e.clientHeight;
	const at = document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2);
	if (at && at !== e && !e.contains(at) && !at.contains(e)) return "covered by " + at.tagName.toLowerCase() + (at.id ? "#" + at.id : "");
	return "";
}`

// wholeShown fails the test for each selector whose element is not wholly
// shown on d's screen.
func wholeShown(t *testing.T, d driver, where string, selectors ...string) {
	t.Helper()
	for _, sel := range selectors {
		v, err := d.eval(fmt.Sprintf("(%s)(%s)", shownFn, js(sel)))
		if err != nil {
			t.Errorf("%s: %s: %v", where, sel, err)
		} else if v != "" {
			t.Errorf("%s: %s is not wholly shown: %v", where, sel, v)
		}
	}
}

// layoutScenario: what a person must see is on their screen, at a
// desktop's size and a phone's (390×844): join errors next to the Join
// button, the chat's room name (as typed), check code with what it means,
// connection status (also while reconnecting), composer and its hint,
// the whole member list once opened, and the note for someone alone in a
// room. The page has one main landmark. Screenshots of each are kept.
func layoutScenario(t *testing.T, lan *lanRoom, browser string, alice, bob, carol, mallory, eve driver) {
	const room = "Layout Room"
	const pass = "lantern-meadow-cobalt-88"
	join(t, alice, "", "alice", pass)
	join(t, bob, "", "bob", pass)
	join(t, carol, "", "carol", pass)
	join(t, mallory, "", "mallory", "not-the-passphrase-1")
	must(t, alice.waitFor("alice to see three members", `document.querySelectorAll("#members li").length === 3`, waitShort))
	must(t, mallory.waitFor("mallory to be told she is alone", `!document.getElementById("alone").hidden`, waitShort))
	shot := func(d driver, sc screen, what string) {
		keepScreenshot(t, d, fmt.Sprintf("layout-%s-%s-%s.png", strings.ToLower(browser), sc.name, what))
	}
	// One main landmark on screen (hidden ones are not landmarks).
	oneMain := `[...document.querySelectorAll("main")].filter((m) => m.getClientRects().length > 0).length === 1`

	for _, sc := range screens {
		where := func(who, what string) string { return fmt.Sprintf("%s %s, %s, %s", browser, sc.name, who, what) }
		for _, d := range []driver{alice, mallory, eve} {
			must(t, d.viewport(sc.width, sc.height))
		}

		// Join errors: an empty name, then a name in use.
		must(t, eve.eval2(`document.getElementById("name").value = ""`))
		must(t, eve.eval2(`document.getElementById("join-error").textContent = ""`))
		must(t, eve.click("join"))
		must(t, eve.waitFor("eve's error for an empty name", `document.getElementById("join-error").textContent !== ""`, waitShort))
		wholeShown(t, eve, where("eve", "empty name"), "#join", "#join-error")
		shot(eve, sc, "join-empty-name")
		must(t, eve.typeInto("name", "alice"))
		must(t, eve.typeInto("passphrase", pass))
		must(t, eve.click("join"))
		must(t, eve.waitFor("eve's name refused", `document.documentElement.dataset.state === "join" && document.getElementById("join-error").textContent.includes("name")`, waitLong))
		wholeShown(t, eve, where("eve", "name in use"), "#join", "#join-error")
		if v, _ := eve.eval(oneMain); v != true {
			t.Errorf("%s: the join page has no main landmark (or several)", where("eve", "join"))
		}
		shot(eve, sc, "join-name-taken")

		// The chat.
		if v, _ := alice.eval(`document.getElementById("room-title").textContent`); v != room {
			t.Errorf("%s: the room is shown as %q; alice typed %q", where("alice", "chat"), v, room)
		}
		wholeShown(t, alice, where("alice", "chat"), "#room-title", "#check-code", "#check-hint", "#status", "#leave", "#composer", "#composer-hint", "#attach", "#send")
		if v, _ := alice.eval(oneMain + ` && [...document.querySelectorAll("main")].find((m) => m.getClientRects().length > 0).contains(document.getElementById("messages"))`); v != true {
			t.Errorf("%s: the messages are not in the one main landmark", where("alice", "chat"))
		}
		shot(alice, sc, "chat")
		// The member list, opened where it is folded.
		if v, _ := alice.eval(`getComputedStyle(document.getElementById("members-toggle")).display !== "none"`); v == true {
			must(t, alice.click("members-toggle"))
			must(t, alice.waitFor("the member list to open", `document.getElementById("members-toggle").getAttribute("aria-expanded") === "true"`, waitShort))
		}
		wholeShown(t, alice, where("alice", "members"), "#members li:nth-child(1)", "#members li:nth-child(2)", "#members li:nth-child(3)", "#my-code")
		shot(alice, sc, "members")
		if v, _ := alice.eval(`document.getElementById("members-toggle").getAttribute("aria-expanded") === "true"`); v == true {
			must(t, alice.click("members-toggle"))
		}
		wholeShown(t, mallory, where("mallory", "alone"), "#alone", "#check-code", "#check-hint", "#status")
		shot(mallory, sc, "alone")
	}

	// Disconnected: alice's link is cut; her status says so, at every size.
	lan.recs[0].Cut(CutReset)
	must(t, alice.waitFor("alice to show she is reconnecting", `document.getElementById("status").textContent.includes("reconnecting")`, waitLong))
	for _, sc := range screens {
		must(t, alice.viewport(sc.width, sc.height))
		wholeShown(t, alice, fmt.Sprintf("%s %s, alice, disconnected", browser, sc.name), "#status", "#room-title")
		shot(alice, sc, "reconnecting")
	}
	lan.recs[0].Restore()
	must(t, alice.waitFor("alice back", `document.documentElement.dataset.state === "ready"`, waitLong))

	for who, d := range map[string]driver{"alice": alice, "bob": bob, "carol": carol, "mallory": mallory, "eve": eve} {
		noCSPViolations(t, d, who)
		if v, _ := d.eval(`document.documentElement.scrollWidth <= document.documentElement.clientWidth`); v != true {
			t.Errorf("%s's page scrolls sideways", who)
		}
	}
}

// TestChromiumLayout: the layout at desktop and phone sizes, in Chromium.
func TestChromiumLayout(t *testing.T) {
	browser := Chromium(t)
	lan := startLANRoom(t, 5, "")
	var tabs []driver
	for i := range 5 {
		tab := cdpTab{Tab(t, browser)}
		must(t, tab.navigate(lan.url(i, "Layout Room")))
		tabs = append(tabs, tab)
	}
	layoutScenario(t, lan, "Chromium", tabs[0], tabs[1], tabs[2], tabs[3], tabs[4])
}

// TestFirefoxLayout: the same in Firefox ESR.
func TestFirefoxLayout(t *testing.T) {
	browser := Firefox(t)
	lan := startLANRoom(t, 5, "")
	var tabs []driver
	for i := range 5 {
		tabs = append(tabs, firefoxTab(t, browser, lan.url(i, "Layout Room")))
	}
	layoutScenario(t, lan, "Firefox", tabs[0], tabs[1], tabs[2], tabs[3], tabs[4])
}
