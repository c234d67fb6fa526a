package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/onionchat/onionchat/hub"
	"github.com/onionchat/onionchat/web"
)

// loadedJS: the page's script ran and shows the join form.
const loadedJS = `document.documentElement.dataset.state === "join" && !document.getElementById("join-view").hidden`

// pageShowsJS says what a page shows, for a failure's log.
const pageShowsJS = `document.documentElement.dataset.state + ": " + document.body.innerText.slice(0, 300)`

// pageTab is a tab a test can point at an address.
type pageTab interface {
	driver
	navigate(url string) error
}

// loadAll navigates every tab to url at once and waits until each shows
// the join form: each page loaded whole.
func loadAll(t *testing.T, url, what string, tabs ...pageTab) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(tabs))
	for i, tab := range tabs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = tab.navigate(url) }()
	}
	wg.Wait()
	for i, tab := range tabs {
		if errs[i] != nil {
			t.Errorf("%s: tab %d: %v", what, i+1, errs[i])
			continue
		}
		if err := tab.waitFor(fmt.Sprintf("%s: tab %d to load", what, i+1), loadedJS, waitShort); err != nil {
			v, _ := tab.eval(pageShowsJS)
			t.Errorf("%s: tab %d did not load: it shows %q (%v)", what, i+1, v, err)
		}
	}
}

// pageLoadsScenario: with every limit at its default, tabs of several
// browser profiles at one address (one peer to the server) load the page
// at once, again and again, and join; with four sessions from that
// address (max_conns_per_peer) a fifth tab is refused, and its page says
// why and what to do. The connections each load took are counted against
// the server's bounds and printed. newTab(i) opens tab i of the
// scenario's profiles.
func pageLoadsScenario(t *testing.T, browser, profiles string, newTab func(i int) pageTab) {
	lan := startLANRoom(t, 1, "")
	rec := lan.recs[0]
	url := lan.url(0, "load room")
	tabs := []pageTab{newTab(0), newTab(1), newTab(2)}

	loadAll(t, url, "first load", tabs...)
	one, peakOne := rec.Conns()
	for round := range 3 {
		loadAll(t, url, fmt.Sprintf("reload %d", round+1), tabs...)
	}
	all, peak := rec.Conns()
	t.Logf("%s, %s at one address: loading all three at once took %d connections (at most %d open at once); "+
		"with three reloads of all three, %d (at most %d open at once); the server allows %d connections before the upgrade "+
		"and %d WebSockets per peer",
		browser, profiles, one, peakOne, all, peak, pendingPerPeer, hub.DefaultMaxConnsPerPeer)
	if t.Failed() {
		t.FailNow()
	}

	const pass = "copper-willow-signal-17"
	for i, tab := range tabs {
		join(t, tab, "", fmt.Sprintf("tab%d", i+1), pass)
	}
	fourth := newTab(3)
	loadAll(t, url, "a fourth tab", fourth)
	join(t, fourth, "", "tab4", pass)

	// A fifth: one more than max_conns_per_peer.
	fifth := newTab(4)
	loadAll(t, url, "a fifth tab", fifth)
	must(t, fifth.typeInto("name", "tab5"))
	must(t, fifth.typeInto("passphrase", pass))
	must(t, fifth.click("join"))
	mustSee(t, fifth, "tab5", fifth.waitFor("the fifth tab to be told", `document.getElementById("join-error").textContent !== ""`, waitLong))
	msg, _ := fifth.eval(`document.getElementById("join-error").textContent`)
	if s := strings.ToLower(fmt.Sprint(msg)); !strings.Contains(s, "too many") || !strings.Contains(s, "close") {
		t.Errorf("the fifth tab says %q; want why (too many tabs at this address) and what to do (close one)", msg)
	}
	wholeShown(t, fifth, "the fifth tab", "#join-error")
	keepScreenshot(t, fifth, strings.ToLower(browser)+"-fifth-tab.png")
	for i, tab := range append(tabs, fourth, fifth) {
		noCSPViolations(t, tab, fmt.Sprintf("tab %d", i+1))
	}
}

// TestChromiumPageLoads: two Chromium profiles (browser contexts: their
// own cookies and connections), the first with two tabs.
func TestChromiumPageLoads(t *testing.T) {
	browser := Chromium(t)
	var profiles [2]context.Context
	pageLoadsScenario(t, "Chromium", "2 profiles with 3 tabs", func(i int) pageTab {
		p := 0 // tabs 0 and 1: profile A; the rest: profile B
		if i >= 2 {
			p = 1
		}
		if profiles[p] == nil {
			tab := Tab(t, browser)
			profiles[p] = tab
			return cdpTab{tab}
		}
		return cdpTab{SameBrowserTab(t, profiles[p])}
	})
}

// TestFirefoxPageLoads: the same in Firefox ESR, each tab in a user
// context of its own (its own cookies and connection pool, as another
// profile): three profiles loading at once.
func TestFirefoxPageLoads(t *testing.T) {
	browser := Firefox(t)
	pageLoadsScenario(t, "Firefox", "3 user contexts with a tab each", func(int) pageTab {
		ctx, cancel := context.WithTimeout(context.Background(), waitShort)
		defer cancel()
		tab, err := browser.NewTab(ctx)
		must(t, err)
		return bidiTab{tab}
	})
}

// pendingPerPeer is the server's bound on one peer's connections before
// the upgrade, with the hub's defaults.
var pendingPerPeer, _ = web.PendingLimits(hub.DefaultMaxConns, hub.DefaultMaxConnsPerPeer)

// TestChromiumPageNotStartedSaysSo: a page that loaded but whose script
// could not (a module refused, as a server over its bounds refuses a
// connection) says to reload and close some tabs, instead of staying
// blank; a page that started never shows it.
func TestChromiumPageNotStartedSaysSo(t *testing.T) {
	browser := Chromium(t)
	lan := startLANRoom(t, 1, "")
	tab := cdpTab{Tab(t, browser)}
	loadAll(t, lan.url(0, "room"), "a normal load", tab)
	if v, _ := tab.eval(`document.getElementById("loading").hidden`); v != true {
		t.Error("a page that started shows the loading notice")
	}
	ctx, cancel := context.WithTimeout(tab.ctx, waitShort)
	defer cancel()
	_, err := chromedp.Call(ctx, network.Enable, network.EnableParams{})
	must(t, err)
	_, err = chromedp.Call(ctx, network.SetBlockedURLs, network.SetBlockedURLsParams{
		URLPatterns: []*network.BlockPattern{{URLPattern: "*://*:*/strip.mjs", Block: true}},
	})
	must(t, err)
	must(t, tab.reload())
	must(t, tab.waitFor("the notice", `!document.getElementById("loading").hidden && getComputedStyle(document.getElementById("loading")).visibility === "visible"`, waitShort))
	if v, _ := tab.eval(`document.documentElement.dataset.state`); v != "loading" {
		t.Fatalf("with strip.mjs blocked the page's state is %v: the check proves nothing", v)
	}
	if v, _ := tab.eval(`document.getElementById("loading").textContent`); !strings.Contains(fmt.Sprint(v), "reload") || !strings.Contains(fmt.Sprint(v), "close some") {
		t.Errorf("the notice says %q", v)
	}
	wholeShown(t, tab, "a page that did not start", "#loading")
	keepScreenshot(t, tab, "chromium-not-started.png")
}
