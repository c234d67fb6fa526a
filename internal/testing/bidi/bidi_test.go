package bidi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/onionchat/onionchat/internal/testing/need"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds each test's dealings with the browser.
const testTimeout = 90 * time.Second

// launch starts a browser for t and closes it when t ends, checking that
// the process and its group are gone.
func launch(t *testing.T, opts Options) *Browser {
	t.Helper()
	need.Tool(t, "firefox-esr")
	opts.Logf = t.Logf
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	start := time.Now()
	b, err := Launch(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("browser %d up in %v", b.PID(), time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		start := time.Now()
		if err := b.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		t.Logf("browser %d closed in %v", b.PID(), time.Since(start).Round(time.Millisecond))
		checkGone(t, b.PID())
		if _, err := os.Stat(b.dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("profile directory %s left behind (%v)", b.dir, err)
		}
	})
	return b
}

// checkGone fails t if process pid exists, or any live (not zombie)
// process of its group.
func checkGone(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process %d still exists (kill 0: %v)", pid, err)
	}
	if live := liveInGroup(pid); len(live) > 0 {
		t.Errorf("processes %v of group %d still alive", live, pid)
	}
}

const formPage = `<!doctype html>
<meta charset="utf-8">
<title>bidi form</title>
<form id="f">
  <input id="name" autocomplete="off">
  <button id="send" type="submit">Send</button>
</form>
<p id="out"></p>
<script>
  window.events = [];
  const f = document.getElementById("f");
  const name = document.getElementById("name");
  name.addEventListener("input", e => events.push({ev: "input", trusted: e.isTrusted}));
  document.getElementById("send").addEventListener("click", e => events.push({ev: "click", trusted: e.isTrusted}));
  f.addEventListener("submit", e => {
    e.preventDefault();
    events.push({ev: "submit", value: name.value, trusted: e.isTrusted});
    document.getElementById("out").textContent = "sent: " + name.value;
  });
</script>
`

// cspPage carries an inline script its policy blocks: the violation is
// raised while the document is parsed, before any script of the page runs.
const cspPage = `<!doctype html>
<meta charset="utf-8">
<title>bidi csp</title>
<script>window.inlineRan = true;</script>
<script src="/page.js"></script>
`

// server serves the test pages over TLS with httptest's self-signed
// certificate, on 127.0.0.1.
func server(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, formPage)
	})
	mux.HandleFunc("GET /csp", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "script-src 'self'")
		fmt.Fprint(w, cspPage)
	})
	mux.HandleFunc("GET /page.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, `window.pageScriptRan = true;`)
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "https://127.0.0.1:") {
		t.Fatalf("test server at %s, want https://127.0.0.1", srv.URL)
	}
	return srv
}

func eval(t *testing.T, ctx context.Context, tab *Tab, js string) any {
	t.Helper()
	v, err := tab.Eval(ctx, js)
	if err != nil {
		t.Fatalf("eval %s: %v", js, err)
	}
	return v
}

func waitFor(t *testing.T, ctx context.Context, tab *Tab, js string) {
	t.Helper()
	if err := tab.WaitFor(ctx, js, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestTwoPeople is the shape of the end-to-end tests: one browser without
// WebAssembly, two people in isolated tabs on an HTTPS page with a
// self-signed certificate.
func TestTwoPeople(t *testing.T) {
	srv := server(t)
	b := launch(t, Options{DisableWasm: true})
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()

	// Registered before any navigation: runs ahead of every page script.
	if _, err := b.AddPreloadScript(ctx, `(send) => {
		window.cspViolations = 0;
		addEventListener("securitypolicyviolation", e => {
			window.cspViolations++;
			send({directive: e.violatedDirective, inlineRan: window.inlineRan === true,
				pageScriptRan: window.pageScriptRan === true});
		});
	}`, "csp"); err != nil {
		t.Fatal(err)
	}

	alice, err := b.NewTab(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := b.NewTab(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if alice.UserContext == bob.UserContext || alice.ID == bob.ID {
		t.Fatalf("tabs share a context: %+v %+v", alice, bob)
	}
	for _, tab := range []*Tab{alice, bob} {
		if err := tab.Navigate(ctx, srv.URL+"/"); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("wasm disabled", func(t *testing.T) {
		for _, tab := range []*Tab{alice, bob} {
			if got := eval(t, ctx, tab, `typeof WebAssembly`); got != "undefined" {
				t.Errorf("typeof WebAssembly = %v, want undefined", got)
			}
		}
	})

	t.Run("isolation", func(t *testing.T) {
		eval(t, ctx, alice, `localStorage.setItem("who", "alice"); document.cookie = "who=alice"; 1`)
		if got := eval(t, ctx, alice, `localStorage.getItem("who")`); got != "alice" {
			t.Errorf("alice's own localStorage: %v", got)
		}
		if got := eval(t, ctx, bob, `localStorage.getItem("who")`); got != nil {
			t.Errorf("bob sees alice's localStorage: %v", got)
		}
		if got := eval(t, ctx, bob, `document.cookie`); got != "" {
			t.Errorf("bob sees alice's cookie: %q", got)
		}
		// Both pages are live at once: neither is a hidden background tab.
		for _, tab := range []*Tab{alice, bob} {
			if got := eval(t, ctx, tab, `document.visibilityState`); got != "visible" {
				t.Errorf("tab %s visibility %v", tab.ID, got)
			}
		}
	})

	t.Run("type and enter", func(t *testing.T) {
		if err := alice.Type(ctx, "#name", "héllo wörld"+KeyEnter); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, alice, `events.some(e => e.ev === "submit")`)
		got := eval(t, ctx, alice, `events.find(e => e.ev === "submit")`)
		want := map[string]any{"ev": "submit", "value": "héllo wörld", "trusted": true}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("submit event %v, want %v", got, want)
		}
		if got := eval(t, ctx, alice, `events.filter(e => e.ev === "input" && e.trusted).length`); got != 11.0 {
			t.Errorf("%v trusted input events, want 11", got)
		}
		if got := eval(t, ctx, alice, `document.querySelector("#out").textContent`); got != "sent: héllo wörld" {
			t.Errorf("page shows %q", got)
		}
		// Bob's page saw none of it.
		if got := eval(t, ctx, bob, `events.length`); got != 0.0 {
			t.Errorf("bob's page has %v events", got)
		}
	})

	t.Run("click", func(t *testing.T) {
		eval(t, ctx, bob, `document.querySelector("#name").value = "from bob"; 1`)
		if err := bob.Click(ctx, "#send"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, bob, `events.some(e => e.ev === "submit")`)
		got := eval(t, ctx, bob, `events.map(e => e.ev + ":" + e.trusted).join(",")`)
		if got != "click:true,submit:true" {
			t.Errorf("events %v", got)
		}
		if err := bob.Click(ctx, "#nothing"); err == nil || !strings.Contains(err.Error(), "no element matches #nothing") {
			t.Errorf("click on a missing element: %v", err)
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		shot, err := alice.Screenshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(shot, []byte("\x89PNG\r\n\x1a\n")) {
			t.Fatalf("screenshot is not a PNG: % x", shot[:min(len(shot), 8)])
		}
		img, err := png.Decode(bytes.NewReader(shot))
		if err != nil {
			t.Fatal(err)
		}
		if r := img.Bounds(); r.Dx() < 100 || r.Dy() < 100 {
			t.Errorf("screenshot is %v", r)
		}
		if dir := os.Getenv("BIDI_SCREENSHOT_DIR"); dir != "" {
			os.WriteFile(filepath.Join(dir, "alice.png"), shot, 0o644)
		}
	})

	t.Run("preload script sees csp violation", func(t *testing.T) {
		if err := alice.Navigate(ctx, srv.URL+"/csp"); err != nil {
			t.Fatal(err)
		}
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		m, err := alice.WaitMessage(mctx, "csp", nil)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := m.Data.(map[string]any)
		if d, _ := data["directive"].(string); !strings.HasPrefix(d, "script-src") {
			t.Errorf("violated directive %v", data["directive"])
		}
		if data["inlineRan"] != false {
			t.Errorf("blocked inline script ran: %v", data)
		}
		if m.Context != alice.ID {
			t.Errorf("message from context %s, want alice's %s", m.Context, alice.ID)
		}
		waitFor(t, ctx, alice, `window.pageScriptRan === true`)
		if got := eval(t, ctx, alice, `[window.cspViolations, window.inlineRan === undefined]`); fmt.Sprint(got) != "[1 true]" {
			t.Errorf("violations, inline script blocked: %v", got)
		}
		if got := bob.Messages("csp"); len(got) != 0 {
			t.Errorf("bob's tab sent %v", got)
		}
		if got := b.Messages("csp"); len(got) != 1 {
			t.Errorf("browser-wide csp messages: %v", got)
		}
	})

	t.Run("log entries", func(t *testing.T) {
		eval(t, ctx, bob, `console.error("boom from bob"); setTimeout(() => { throw new Error("kaboom") }); 1`)
		deadline := time.Now().Add(10 * time.Second)
		for {
			var texts []string
			for _, l := range bob.Errors() {
				texts = append(texts, l.Type+": "+l.Text)
			}
			all := strings.Join(texts, "\n")
			if strings.Contains(all, "console: boom from bob") && strings.Contains(all, "javascript: Error: kaboom") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("bob's errors:\n%s", all)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// Alice's tab logged only the violation of its page's policy.
		for _, l := range alice.Errors() {
			if !strings.HasPrefix(l.Text, "Content-Security-Policy:") {
				t.Errorf("alice's tab logged %v", l)
			}
		}
	})

	t.Run("close tab", func(t *testing.T) {
		if err := bob.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.Eval(ctx, `1`); err == nil {
			t.Error("eval in a closed tab succeeded")
		}
		if got := eval(t, ctx, alice, `1 + 1`); got != 2.0 {
			t.Errorf("alice after bob left: %v", got)
		}
	})
}

// TestEval checks values, exceptions, waiting and bounds on a browser with
// WebAssembly enabled.
func TestEval(t *testing.T) {
	b := launch(t, Options{ExtraPrefs: map[string]any{"dom.webnotifications.enabled": false}})
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	tab, err := b.NewTab(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Navigate(ctx, "about:blank"); err != nil {
		t.Fatal(err)
	}

	if got := eval(t, ctx, tab, `typeof WebAssembly`); got != "object" {
		t.Errorf("typeof WebAssembly = %v, want object", got)
	}
	if got := eval(t, ctx, tab, `"Notification" in window`); got != false {
		t.Errorf("extra pref not applied: Notification in window = %v", got)
	}

	got := eval(t, ctx, tab, `({s: "x", n: 1.5, t: true, z: null, u: undefined, a: [1, "two", [3]],
		o: {k: "v"}, m: new Map([[1, "one"]]), big: 12345678901234567890n, nan: NaN, neg: -Infinity})`)
	want := `map[a:[1 two [3]] big:12345678901234567890 m:map[1:one] n:1.5 nan:NaN neg:-Inf o:map[k:v] s:x t:true u:<nil> z:<nil>]`
	if fmt.Sprint(got) != want {
		t.Errorf("value\n got %v\nwant %s", got, want)
	}
	if got := eval(t, ctx, tab, `new Promise(r => setTimeout(() => r("later"), 50))`); got != "later" {
		t.Errorf("awaited promise: %v", got)
	}
	if got := eval(t, ctx, tab, `document.body`); fmt.Sprintf("%T", got) != "bidi.Object" {
		t.Errorf("node: %#v", got)
	}

	_, err = tab.Eval(ctx, `throw new Error("no such user")`)
	var se *ScriptError
	if !errors.As(err, &se) || !strings.Contains(se.Text, "no such user") {
		t.Errorf("exception: %v", err)
	}
	_, err = tab.Eval(ctx, `Promise.reject(new TypeError("rejected"))`)
	if !errors.As(err, &se) || !strings.Contains(se.Text, "rejected") {
		t.Errorf("rejection: %v", err)
	}

	t.Run("wait for", func(t *testing.T) {
		eval(t, ctx, tab, `window.ready = false; setTimeout(() => window.ready = "yes", 200); 1`)
		if err := tab.WaitFor(ctx, `window.ready`, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err := tab.WaitFor(ctx, `window.count = (window.count || 0) + 1; window.count > 1e9 ? 1 : ""`, 300*time.Millisecond)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `last value ""`) {
			t.Errorf("wait for a falsy value: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("timed out wait took %v", d)
		}
		err = tab.WaitFor(ctx, `notDefined.x`, 200*time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), "notDefined") {
			t.Errorf("wait with exceptions: %v", err)
		}
	})

	t.Run("call bounded by ctx", func(t *testing.T) {
		sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := tab.Eval(sctx, `new Promise(() => {})`)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("never-settling promise: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("bounded call took %v", d)
		}
		// The session is still usable.
		if got := eval(t, ctx, tab, `"still here"`); got != "still here" {
			t.Errorf("after a timed-out call: %v", got)
		}
	})

	t.Run("raw command and events", func(t *testing.T) {
		var tree struct {
			Contexts []struct {
				Context, URL string
			}
		}
		if err := b.Call(ctx, "browsingContext.getTree", nil, &tree); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, c := range tree.Contexts {
			found = found || c.Context == tab.ID
		}
		if !found {
			t.Errorf("tab %s not in tree %+v", tab.ID, tree)
		}
		var ce *CommandError
		if err := b.Call(ctx, "browsingContext.navigate", map[string]any{"context": "nope", "url": "about:blank"}, nil); !errors.As(err, &ce) || ce.Code != "no such frame" {
			t.Errorf("bad context: %v", err)
		}

		if err := b.Subscribe(ctx, "browsingContext.load"); err != nil {
			t.Fatal(err)
		}
		loads := make(chan Event, 10)
		remove := b.OnEvent(func(e Event) {
			if e.Method == "browsingContext.load" {
				select {
				case loads <- e:
				default:
				}
			}
		})
		defer remove()
		if err := tab.Navigate(ctx, "about:blank#again"); err != nil {
			t.Fatal(err)
		}
		if err := tab.Navigate(ctx, "data:text/html,<p>loaded"); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-loads:
			if !strings.Contains(string(e.Params), tab.ID) {
				t.Errorf("load event %s", e.Params)
			}
		case <-time.After(10 * time.Second):
			t.Error("no browsingContext.load event")
		}
	})

	t.Run("closed", func(t *testing.T) {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		checkGone(t, b.PID())
		if _, err := tab.Eval(ctx, `1`); !errors.Is(err, ErrClosed) {
			t.Errorf("eval after close: %v", err)
		}
		if err := b.Close(); err != nil {
			t.Errorf("second close: %v", err)
		}
	})
}

// TestLaunchFailures checks that a browser that dies or never listens is
// reported, quickly, and leaves nothing behind.
func TestLaunchFailures(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where Launch makes its directory
	script := func(name, body string) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	start := time.Now()
	_, err := Launch(ctx, Options{Binary: script("dies", "echo broken >&2; exit 3\n"), Logf: t.Logf})
	if err == nil || !strings.Contains(err.Error(), "exited before listening") {
		t.Errorf("dying browser: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("dying browser noticed after %v", d)
	}

	pidFile := filepath.Join(t.TempDir(), "pid")
	start = time.Now()
	_, err = Launch(ctx, Options{
		Binary:       script("mute", "echo $$ > "+pidFile+"\nexec sleep 60\n"),
		StartTimeout: 500 * time.Millisecond,
		Logf:         t.Logf,
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("mute browser: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("mute browser given up after %v", d)
	}
	raw, _ := os.ReadFile(pidFile)
	if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err != nil {
		t.Errorf("pid file: %q", raw)
	} else {
		checkGone(t, pid)
	}

	_, err = Launch(ctx, Options{Binary: script("unused", "exit 0\n"), ExtraPrefs: map[string]any{"x": 1.5}})
	if err == nil || !strings.Contains(err.Error(), `preference "x"`) {
		t.Errorf("float preference: %v", err)
	}

	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("left in TMPDIR: %v", left)
	}
}
