package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/onionchat/onionchat/internal/testing/bidi"
	"github.com/onionchat/onionchat/internal/testing/need"
)

// bidiTab drives one Firefox tab.
type bidiTab struct{ t *bidi.Tab }

func (b bidiTab) eval(js string) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	return b.t.Eval(ctx, js)
}

func (b bidiTab) eval2(expr string) error { _, err := b.eval("(" + expr + ", true)"); return err }

func (b bidiTab) waitFor(what, js string, d time.Duration) error {
	if err := b.t.WaitFor(context.Background(), js, d); err != nil {
		return errorf("waiting for %s: %v", what, err)
	}
	return nil
}

func (b bidiTab) typeInto(id, text string) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	return b.t.Type(ctx, "#"+id, text)
}

func (b bidiTab) enter(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	return b.t.Type(ctx, "#"+id, bidi.KeyEnter)
}

func (b bidiTab) click(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	return b.t.Click(ctx, "#"+id)
}

func (b bidiTab) screenshot() ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	return b.t.Screenshot(ctx)
}

func (b bidiTab) viewport(width, height int) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	return b.t.SetViewport(ctx, width, height)
}

func (b bidiTab) wheel(selector string, dy int) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	return b.t.Wheel(ctx, selector, dy)
}

func (b bidiTab) navigate(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	return b.t.Navigate(ctx, url)
}

// cspPreload is cspRecorder as a BiDi preload function.
const cspPreload = "() => {" + cspRecorder + "}"

// saferPrefs are what Tor Browser's "Safer" security level turns off that
// the page's scripts could notice: the JITs (Ion, Baseline), native
// regular expressions and asm.js; WebAssembly goes with DisableWasm.
var saferPrefs = map[string]any{
	"javascript.options.ion":              false,
	"javascript.options.baselinejit":      false,
	"javascript.options.native_regexp":    false,
	"javascript.options.asmjs":            false,
	"javascript.options.wasm_baselinejit": false,
}

// torBrowserPrefs are saferPrefs and what Tor Browser has on at every
// level that a page can notice: resistFingerprinting (coarse timers, UTC,
// a standard window).
var torBrowserPrefs = func() map[string]any {
	m := map[string]any{"privacy.resistFingerprinting": true}
	for k, v := range saferPrefs {
		m[k] = v
	}
	return m
}()

// Firefox launches Debian's firefox-esr headless with WebAssembly and the
// JITs off, as at Tor Browser's Safer level, with the CSP recorder
// preloaded.
func Firefox(t *testing.T) *bidi.Browser { return firefoxWith(t, saferPrefs) }

// firefoxWith is Firefox with prefs instead of saferPrefs (WebAssembly off
// either way).
func firefoxWith(t *testing.T, prefs map[string]any) *bidi.Browser {
	t.Helper()
	need.Tool(t, "firefox-esr")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := bidi.Launch(ctx, bidi.Options{DisableWasm: true, ExtraPrefs: prefs, Logf: t.Logf})
	if err != nil {
		t.Fatalf("launch firefox-esr: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	if _, err := b.AddPreloadScript(ctx, cspPreload); err != nil {
		t.Fatalf("preload: %v", err)
	}
	return b
}

func firefoxTab(t *testing.T, b *bidi.Browser, url string) bidiTab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	tab, err := b.NewTab(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Navigate(ctx, url); err != nil {
		t.Fatal(err)
	}
	return bidiTab{tab}
}

// TestFirefoxChat: the page in Firefox ESR (Tor Browser's base) with
// WebAssembly and the JITs off, against the real binary in LAN mode: two
// friends join one room and chat both ways under protocol version 3 (ECDH
// and ECDSA P-256 in Firefox's Web Crypto), each shows the other's safety
// code as the other shows its own; a third with a wrong passphrase is
// alone in another room and the friends see nobody new; no CSP violation,
// and neither messages, passphrases nor the room's name reach the server.
func TestFirefoxChat(t *testing.T) {
	browser := Firefox(t)
	lan := startLANRoom(t, 3, "")
	const pass = "heron-quartz-velvet-19"
	alice, bob, mallory := firefoxTab(t, browser, lan.url(0, "heron lake")), firefoxTab(t, browser, lan.url(1, "heron lake")), firefoxTab(t, browser, lan.url(2, "heron lake"))
	for who, tab := range map[string]bidiTab{"alice": alice, "bob": bob} {
		if v, err := tab.eval(`typeof WebAssembly`); err != nil || v != "undefined" {
			t.Fatalf("%s: typeof WebAssembly = %v, %v; want undefined (Safer level)", who, v, err)
		}
	}
	join(t, alice, "", "alice", pass)
	join(t, bob, "", "bob", pass)
	join(t, mallory, "", "mallory", "gull-ember-wrong-5")
	send(t, alice, "hello from firefox alice")
	waitMessage(t, bob, "bob", "alice", "hello from firefox alice")
	send(t, bob, "hi alice, bob here")
	waitMessage(t, alice, "alice", "bob", "hi alice, bob here")
	sameSafetyCodes(t, map[string]driver{"alice": alice, "bob": bob})
	must(t, mallory.waitFor("mallory to be told she is alone", `!document.getElementById("alone").hidden`, waitShort))
	for who, tab := range map[string]bidiTab{"alice": alice, "bob": bob, "mallory": mallory} {
		want := map[string]float64{"alice": 2, "bob": 2, "mallory": 1}[who]
		if n, _ := tab.eval(`document.querySelectorAll("#members li").length`); n != want {
			t.Errorf("%s's member list has %v entries, want %v", who, n, want)
		}
	}
	if n, _ := mallory.eval(`document.querySelectorAll("#messages li.msg").length`); n != float64(0) {
		t.Errorf("mallory, with a wrong passphrase, sees %v messages", n)
	}
	for who, tab := range map[string]bidiTab{"alice": alice, "bob": bob, "mallory": mallory} {
		noCSPViolations(t, tab, who)
	}
	keepScreenshot(t, alice, "firefox-chat.png")
	for _, rec := range lan.recs {
		neverSent(t, rec, pass, "gull-ember-wrong-5", "heron lake", "hello from firefox alice", "hi alice, bob here")
	}
}
