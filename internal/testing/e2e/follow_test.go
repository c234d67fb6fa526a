package e2e

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"testing"
	"time"
)

// tallPicture is a w×h PNG: a picture whose height the page learns only
// once it has loaded.
func tallPicture(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 128, 255})
		}
	}
	var b bytes.Buffer
	must(t, png.Encode(&b, img))
	return b.Bytes()
}

// atBottomJS: the message list is scrolled to its end.
const atBottomJS = `(() => { const ol = document.getElementById("messages"); return ol.scrollHeight - ol.scrollTop - ol.clientHeight < 2; })()`

// followScenario: bob, on a phone-sized screen, reads at the bottom of
// the chat: it follows alice's messages, a picture among them (whose
// height comes only when it loads) and the notices of a server restart.
// Once bob scrolls up to read, new messages do not pull the view down;
// "new messages below" says they came and takes him there.
func followScenario(t *testing.T, lan *lanRoom, alice, bob driver) {
	const pass = "marble-sparrow-violet-64"
	join(t, alice, "", "alice", pass)
	join(t, bob, "", "bob", pass)
	must(t, bob.viewport(390, 844))
	lastShown := func(what string) {
		t.Helper()
		mustSee(t, bob, "bob", bob.waitFor("bob's view at the end after "+what, atBottomJS, waitShort))
		wholeShown(t, bob, "bob after "+what, "#messages > li:last-child")
	}

	for i := range 25 {
		send(t, alice, fmt.Sprintf("message %d", i))
	}
	waitMessage(t, bob, "bob", "alice", "message 24")
	lastShown("25 messages")

	giveFile(t, alice, "tall.png", "image/png", tallPicture(t, 600, 900))
	must(t, bob.waitFor("bob to show the picture", fileItemJS("tall.png")+`?.querySelector("img")?.complete && `+fileItemJS("tall.png")+`.querySelector("img").naturalHeight === 900`, waitLong))
	lastShown("a picture")
	send(t, alice, "after the picture")
	waitMessage(t, bob, "bob", "alice", "after the picture")
	lastShown("a message after the picture")

	lan.restart(t, nil)
	must(t, bob.waitFor("bob back after the restart", `document.documentElement.dataset.state === "ready"`, waitLong))
	must(t, alice.waitFor("alice back after the restart", `document.documentElement.dataset.state === "ready"`, waitLong))
	send(t, alice, "after the restart")
	waitMessage(t, bob, "bob", "alice", "after the restart")
	lastShown("a server restart")
	if v, _ := bob.eval(`getComputedStyle(document.getElementById("new-below")).display`); v != "none" {
		t.Errorf("bob, at the end, is offered \"new messages below\" (%v)", v)
	}

	// bob scrolls up to read (the mouse wheel); new messages leave him
	// there, and say so.
	must(t, bob.wheel("#messages", -600))
	must(t, bob.waitFor("bob's view to leave the end", `!`+atBottomJS, waitShort))
	time.Sleep(300 * time.Millisecond) // the wheel's smooth scroll settles
	top, err := bob.eval(`document.getElementById("messages").scrollTop`)
	must(t, err)
	send(t, alice, "while bob reads above")
	waitMessage(t, bob, "bob", "alice", "while bob reads above")
	time.Sleep(200 * time.Millisecond) // what the page would do, it has done
	if v, _ := bob.eval(`document.getElementById("messages").scrollTop`); v != top {
		t.Errorf("bob, reading above at %v, was moved to %v", top, v)
	}
	must(t, bob.waitFor(`"new messages below"`, `!document.getElementById("new-below").hidden`, waitShort))
	wholeShown(t, bob, "bob reading above", "#new-below")
	keepScreenshot(t, bob, "follow-new-below.png")
	must(t, bob.click("new-below"))
	lastShown(`"new messages below"`)
	must(t, bob.waitFor(`"new messages below" to go`, `document.getElementById("new-below").hidden`, waitShort))
	noCSPViolations(t, bob, "bob")
}

// TestChromiumFollow: the chat follows new messages in Chromium.
func TestChromiumFollow(t *testing.T) {
	browser := Chromium(t)
	lan := startLANRoom(t, 2, "")
	a, b := cdpTab{Tab(t, browser)}, cdpTab{Tab(t, browser)}
	must(t, a.navigate(lan.url(0, "follow room")))
	must(t, b.navigate(lan.url(1, "follow room")))
	followScenario(t, lan, a, b)
}

// TestFirefoxFollow: the same in Firefox ESR.
func TestFirefoxFollow(t *testing.T) {
	browser := Firefox(t)
	lan := startLANRoom(t, 2, "")
	followScenario(t, lan, firefoxTab(t, browser, lan.url(0, "follow room")), firefoxTab(t, browser, lan.url(1, "follow room")))
}
