package e2e

import (
	"fmt"
	"slices"
	"sort"
	"testing"
)

// TestChromiumRoomLifecycle and TestFirefoxRoomLifecycle run roomLifecycle
// in Chromium and in Firefox ESR with the JITs, WebAssembly and
// fingerprinting off as Tor Browser's Safer level has them.
func TestChromiumRoomLifecycle(t *testing.T) {
	browser := Chromium(t)
	roomLifecycle(t, "chromium", func(url string) driver {
		tab := cdpTab{Tab(t, browser)}
		must(t, tab.navigate(url))
		return tab
	})
}

func TestFirefoxRoomLifecycle(t *testing.T) {
	browser := firefoxWith(t, torBrowserPrefs)
	roomLifecycle(t, "firefox", func(url string) driver {
		tab := firefoxTab(t, browser, url)
		if v, err := tab.eval(`typeof WebAssembly`); err != nil || v != "undefined" {
			t.Fatalf("typeof WebAssembly = %v, %v; want undefined (Safer level)", v, err)
		}
		return tab
	})
}

// roomLifecycle is a room's life with the group's keys by MLS, against
// the real binary in LAN mode, each person through a proxy of their own
// and a browser context of their own (open makes a tab at a URL): alice,
// bob and carol chat; carol leaves and is removed from the group; dave
// joins; the server restarts (SIGTERM, and started again on the same data
// directory) right after alice sent a message. Every message is shown
// exactly once on every screen it is for (its sender's included) and on
// none other: none of what was said after carol left reaches her page.
// Every screen lists the group's members, all here, by name and with the
// safety codes their own pages show, and never someone removed.
func roomLifecycle(t *testing.T, browser string, open func(url string) driver) {
	lan := startLANRoom(t, 4, "")
	const room = "lifecycle"
	const pass = "quince-harbour-tundra-58"
	c := newChat(t)
	// A page is in the room once it is in the group: every page lists it
	// as here. (What is sent before, while it is "joining", is not for it.)
	names := []string{"alice", "bob", "carol"}
	for i, name := range names {
		c.pages[name] = open(lan.url(i, room))
		join(t, c.pages[name], "", name, pass)
		membersAre(t, c.in(names[:i+1]...), names[:i+1]...)
	}

	c.say("alice", "morning, all", "bob", "carol")
	c.say("bob", "morning alice", "alice", "carol")
	c.say("carol", "hi both", "alice", "bob")
	sameSafetyCodes(t, c.in(names...))
	c.check(names...)
	before := len(c.said)

	// carol leaves: the others' pages remove her leaf before anyone sends.
	must(t, c.pages["carol"].click("leave"))
	must(t, c.pages["carol"].waitFor("carol's join form", `document.documentElement.dataset.state === "join"`, waitShort))
	for _, who := range []string{"alice", "bob"} {
		waitNotice(t, c.pages[who], who, "carol left.")
	}
	membersAre(t, c.in("alice", "bob"), "alice", "bob")
	c.say("alice", "carol has gone", "bob")
	c.say("bob", "so she cannot read this", "alice")

	// dave joins.
	c.pages["dave"] = open(lan.url(3, room))
	join(t, c.pages["dave"], "", "dave", pass)
	membersAre(t, c.in("alice", "bob", "dave"), "alice", "bob", "dave")
	c.say("dave", "hello, dave here", "alice", "bob")
	c.say("bob", "welcome, dave", "alice", "dave")

	// The server restarts right after alice sends: her message reaches the
	// others once, whether it got through before the restart or is sent
	// again after it.
	send(t, c.pages["alice"], "just before the restart")
	c.said = append(c.said, shownMsg{"alice", "just before the restart", []string{"alice", "bob", "dave"}})
	lan.restart(t, nil)
	for _, who := range []string{"bob", "dave"} {
		waitMessage(t, c.pages[who], who, "alice", "just before the restart")
	}
	membersAre(t, c.in("alice", "bob", "dave"), "alice", "bob", "dave")
	c.say("bob", "back after the restart", "alice", "dave")
	c.say("dave", "me too", "alice", "bob")
	c.say("alice", "and me", "bob", "dave")

	membersAre(t, c.in("alice", "bob", "dave"), "alice", "bob", "dave")
	sameSafetyCodes(t, c.in("alice", "bob", "dave"))
	c.check("alice", "bob", "dave")
	noCSPViolations(t, c.pages["carol"], "carol")
	for _, m := range c.said[before:] {
		if v, _ := c.pages["carol"].eval(`document.body.textContent.includes(` + js(m.text) + `)`); v != false {
			t.Errorf("carol's page shows %q, sent after she left", m.text)
		}
	}
	keepScreenshot(t, c.pages["dave"], "lifecycle-"+browser+".png")
	for _, rec := range lan.recs {
		neverSent(t, rec, pass, room, "morning, all", "carol has gone", "just before the restart", "and me")
	}
}

// chat is the pages of a browser scenario, by name, and what was said in
// them. When the test fails, what every page shows is logged.
type chat struct {
	t     *testing.T
	pages map[string]driver
	said  []shownMsg
}

func newChat(t *testing.T) *chat {
	c := &chat{t: t, pages: map[string]driver{}}
	t.Cleanup(func() {
		if t.Failed() {
			for name, d := range c.pages {
				logPage(t, d, name)
			}
		}
	})
	return c
}

// in is the pages of who.
func (c *chat) in(who ...string) map[string]driver {
	m := map[string]driver{}
	for _, w := range who {
		m[w] = c.pages[w]
	}
	return m
}

// say sends text from the page of from and waits until the pages of to
// show it.
func (c *chat) say(from, text string, to ...string) {
	c.t.Helper()
	send(c.t, c.pages[from], text)
	c.said = append(c.said, shownMsg{from, text, append(to, from)})
	for _, who := range to {
		waitMessage(c.t, c.pages[who], who, from, text)
	}
}

// check fails the test unless each of who's pages shows every message
// said for it exactly once and none other, recorded no CSP violation, and
// warned of nothing: nobody was removed while here, no message went
// missing, no frame was refused.
func (c *chat) check(who ...string) {
	c.t.Helper()
	for _, w := range who {
		d := c.pages[w]
		shownOnce(c.t, w, d, c.said)
		noCSPViolations(c.t, d, w)
		if v, _ := d.eval(`[...document.querySelectorAll("#messages li.notice.error")].map(li => li.textContent).join("\n")`); v != "" {
			c.t.Errorf("%s's page warned:\n%v", w, v)
		}
	}
}

// logPage logs what d shows: its state, members, messages and notices.
func logPage(t *testing.T, d driver, who string) {
	t.Helper()
	if v, err := d.eval(`document.documentElement.dataset.state + " / " + document.getElementById("status").textContent + "\n" + [...document.querySelectorAll("#members li, #messages li")].map(li => "  " + li.className + ": " + li.textContent).join("\n")`); err == nil {
		t.Logf("%s's page:\n%v", who, v)
	}
}

// shownOnce fails the test unless who's page d shows each message of said
// that is for who exactly once, and none that is not.
func shownOnce(t *testing.T, who string, d driver, said []shownMsg) {
	t.Helper()
	for _, m := range said {
		want := 0
		if slices.Contains(m.to, who) {
			want = 1
		}
		v, err := d.eval(countMessagesJS(m.from, m.text))
		must(t, err)
		if v != float64(want) {
			t.Errorf("%s's page shows %q from %s %v times, want %d", who, m.text, m.from, v, want)
		}
	}
}

// shownMsg is a message and the pages that must show it.
type shownMsg struct {
	from, text string
	to         []string
}

// countMessagesJS is how many times a page shows text from sender (its
// own messages under its own name).
func countMessagesJS(sender, text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll("#messages li.msg")].filter(li =>
		li.querySelector(".sender").textContent === %s && li.querySelector(".text").textContent === %s).length`, js(sender), js(text))
}

// membersAre waits until every page lists exactly names, each a member of
// the group that is here (not "joining": a session outside the group; not
// "reconnecting"), and fails with what each page shows if not.
func membersAre(t *testing.T, pages map[string]driver, names ...string) {
	t.Helper()
	sort.Strings(names)
	want := js(names)
	for who, d := range pages {
		mustSee(t, d, who, d.waitFor(fmt.Sprintf("%s to list %v, all here", who, names), `(() => {
			const li = [...document.querySelectorAll("#members li")];
			return li.every(l => l.dataset.status === "here") &&
				JSON.stringify(li.map(l => l.querySelector(".name").textContent).sort()) === `+js(want)+`;
		})()`, waitLong))
	}
}
