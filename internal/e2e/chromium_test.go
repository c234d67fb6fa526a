package e2e

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
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

func (c cdpTab) waitFor(what, expr string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(c.ctx, d)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
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

func (c cdpTab) navigate(url string) error {
	ctx, cancel := context.WithTimeout(c.ctx, waitShort)
	defer cancel()
	return chromedp.Do(ctx, chromedp.Navigate(url))
}

// TestChromiumChat drives the real page in real Chromium against the real
// binary in LAN mode, through a proxy that records every byte the server
// gets: two people chat both ways, a third with the wrong passphrase is
// told so, markup in messages and names stays text, the pages ride out a
// server restart, the page raises no CSP violation, and neither a message
// nor the passphrase ever reaches the server. It runs protocol version 2:
// a wrong passphrase is caught at the hello.
func TestChromiumChat(t *testing.T) {
	browser := Chromium(t)
	data := filepath.Join(t.TempDir(), "data")
	addr := FreePort(t)
	args := []string{"--mode", "lan", "--listen", addr, "--data-dir", data}
	srv := Start(t, args...)
	rec := NewRecorder(t, addr)
	url := "https://" + rec.Addr + "/#room=e2e%20room"

	const pass = "grapefruit-osprey-lantern-42"
	const xssName = `<img src=x onerror=alert(1)>`
	alice, bob, mallory := cdpTab{Tab(t, browser)}, cdpTab{Tab(t, browser)}, cdpTab{Tab(t, browser)}
	// alice's screen is a phone's: 360 px wide.
	must(t, chromedp.Do(alice.ctx, chromedp.EmulateViewport(360, 740)))
	for _, tab := range []cdpTab{alice, bob, mallory} {
		must(t, tab.navigate(url))
	}
	// The room comes from the link's fragment.
	if v, _ := alice.eval(`document.getElementById("room").value`); v != "e2e room" {
		t.Fatalf("room field %q, want the room from the link", v)
	}
	join(t, alice, "", "alice", pass)
	join(t, bob, "", xssName, pass)
	join(t, mallory, "", "mallory", "not the passphrase")

	send(t, alice, "hello from alice")
	waitMessage(t, bob, "bob", "alice", "hello from alice")
	send(t, bob, "hello from bob")
	waitMessage(t, alice, "alice", xssName, "hello from bob")
	// Under version 2 a wrong passphrase shows at the hello: each side is
	// told that the other's keys could not be opened, and mallory that
	// alice's message could not be read.
	waitNotice(t, alice, "alice", "mallory’s hello could not be opened: mallory uses a different passphrase")
	waitNotice(t, bob, "bob", "mallory’s hello could not be opened: mallory uses a different passphrase")
	waitNotice(t, mallory, "mallory", "alice’s hello could not be opened: alice uses a different passphrase")
	waitNotice(t, mallory, "mallory", "from alice could not be read: alice uses a different passphrase, or the message was altered")
	if ok, _ := mallory.eval(hasMessageJS("alice", "hello from alice")); ok == true {
		t.Fatal("mallory, with the wrong passphrase, read alice's message")
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

	// The server restarts; the pages reconnect on their own, without the
	// passphrase (the key stays in memory), and chat on.
	must(t, srv.Signal(syscall.SIGTERM))
	if code := srv.Wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	for _, tab := range []cdpTab{alice, bob} {
		must(t, tab.waitFor("the page to notice the restart", `document.documentElement.dataset.state !== "ready"`, waitShort))
	}
	Start(t, args...)
	for _, tab := range []cdpTab{alice, bob} {
		must(t, tab.waitFor("the page to reconnect", `document.documentElement.dataset.state === "ready"`, waitLong))
	}
	send(t, bob, "still here after the restart")
	waitMessage(t, alice, "alice", xssName, "still here after the restart")
	send(t, alice, "me too")
	waitMessage(t, bob, "bob", "alice", "me too")

	for who, tab := range map[string]cdpTab{"alice": alice, "bob": bob, "mallory": mallory} {
		noCSPViolations(t, tab, who)
	}
	if w, _ := alice.eval(`document.documentElement.scrollWidth <= 360`); w != true {
		t.Error("alice's page scrolls sideways at 360 px")
	}
	png, err := alice.screenshot()
	must(t, err)
	shot := filepath.Join(Artifacts(t), "chromium-chat-360px.png")
	must(t, os.WriteFile(shot, png, 0o644))
	t.Logf("screenshot: %s", shot)

	neverSent(t, rec, pass, "not the passphrase", "hello from alice", "hello from bob", "still here after the restart", "bold?")
}
