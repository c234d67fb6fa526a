package e2e

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// driver is what the page scenarios need from a browser tab, so that the
// same steps run in Chromium (CDP) and Firefox (WebDriver BiDi).
type driver interface {
	eval(js string) (any, error)
	eval2(js string) error // for its effect
	waitFor(what, js string, d time.Duration) error
	typeInto(id, text string) error
	enter(id string) error
	click(id string) error
	screenshot() ([]byte, error)
	viewport(width, height int) error
	wheel(selector string, dy int) error // turn the mouse wheel over it (dy < 0: up)
}

// Every wait in a scenario is bounded by one of these.
const (
	waitShort = 20 * time.Second
	waitLong  = 60 * time.Second
)

func js(v any) string { b, _ := json.Marshal(v); return string(b) }

// join fills in the form as a person would and waits until the page says
// it is ready (key derived, joined).
func join(t *testing.T, d driver, room, name, pass string) {
	t.Helper()
	must(t, d.waitFor("the join form", `document.documentElement.dataset.state === "join"`, waitShort))
	if room != "" {
		must(t, d.typeInto("room", room))
	}
	must(t, d.typeInto("name", name))
	must(t, d.typeInto("passphrase", pass))
	must(t, d.click("join"))
	mustSee(t, d, name, d.waitFor(name+" ready", `document.documentElement.dataset.state === "ready"`, waitLong))
	if v, _ := d.eval(`document.getElementById("passphrase").value`); v != "" {
		t.Fatalf("%s: the passphrase field still holds %q after the key was made", name, v)
	}
}

func send(t *testing.T, d driver, text string) {
	t.Helper()
	must(t, d.typeInto("composer", text))
	must(t, d.enter("composer"))
	must(t, d.waitFor("the composer to empty", `document.getElementById("composer").value === ""`, waitShort))
}

func hasMessageJS(sender, text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll("#messages li.msg")].some(li =>
		li.querySelector(".sender").textContent === %s && li.querySelector(".text")?.textContent === %s)`, js(sender), js(text))
}

func waitMessage(t *testing.T, d driver, who, sender, text string) {
	t.Helper()
	mustSee(t, d, who, d.waitFor(fmt.Sprintf("%s to see %q from %s", who, text, sender), hasMessageJS(sender, text), waitShort))
}

func waitNotice(t *testing.T, d driver, who, substr string) {
	t.Helper()
	mustSee(t, d, who, d.waitFor(fmt.Sprintf("%s to see a notice %q", who, substr), hasNoticeJS(substr), waitShort))
}

func hasNoticeJS(substr string) string {
	return fmt.Sprintf(`[...document.querySelectorAll("#messages li.notice")].some(li => li.textContent.includes(%s))`, js(substr))
}

// mustSee fails the test if err is not nil, logging what the page shows
// (its state, messages and notices) so that a failure says why.
func mustSee(t *testing.T, d driver, who string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if v, e := d.eval(`document.documentElement.dataset.state + " / " + document.getElementById("status").textContent + " / " + document.getElementById("join-error").textContent + "\n" + [...document.querySelectorAll("#messages li, #members li")].map(li => "  " + li.className + ": " + li.textContent).join("\n")`); e == nil {
		t.Logf("%s's page:\n%v", who, v)
	}
	t.Fatal(err)
}

// noCSPViolations fails the test if the page recorded any
// securitypolicyviolation event since it loaded.
func noCSPViolations(t *testing.T, d driver, who string) {
	t.Helper()
	v, err := d.eval(`JSON.stringify(window.__csp === undefined ? ["recorder missing"] : window.__csp)`)
	if err != nil {
		t.Fatalf("%s: read CSP violations: %v", who, err)
	}
	if v != "[]" {
		t.Errorf("%s: CSP violations: %v", who, v)
	}
}

// keepScreenshot saves what d shows under the artifacts directory, for
// people to look at.
func keepScreenshot(t *testing.T, d driver, name string) {
	t.Helper()
	png, err := d.screenshot()
	must(t, err)
	shot := filepath.Join(Artifacts(t), name)
	must(t, os.WriteFile(shot, png, 0o644))
	t.Logf("screenshot: %s", shot)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// neverSent fails the test if any secret appears in what the server was
// sent or sent back: the HTTP bytes and every WebSocket payload.
func neverSent(t *testing.T, rec *Recorder, secrets ...string) {
	t.Helper()
	if rec.WSFrames() == 0 {
		t.Fatal("the recorder saw no WebSocket frames: the check below would prove nothing")
	}
	for _, side := range []struct {
		name string
		data [][]byte
	}{{"sent to the server", rec.Sent()}, {"sent by the server", rec.Received()}} {
		for _, b := range side.data {
			for _, s := range secrets {
				if strings.Contains(string(b), s) {
					t.Errorf("%q appears in bytes %s", s, side.name)
				}
			}
		}
	}
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// lanRoom is the real binary in LAN mode on 127.0.0.1:PORT with one
// recording proxy per person on 127.0.0.(2+i):PORT, a name in the
// server's certificate: each person is a peer of their own, under a Host
// the server answers to, and a test can cut one person's link.
type lanRoom struct {
	srv  *Proc
	args []string
	addr string // the server's host:port
	recs []*Recorder
}

// testHub are the hub settings of the browser tests: every limit on at its
// default but pings, so that a dead link is found in seconds, not a minute.
const testHub = "ping_interval = \"2s\"\nidle_timeout = \"6s\"\n"

func startLANRoom(t *testing.T, people int, hub string) *lanRoom {
	t.Helper()
	addr := FreePort(t)
	_, port, _ := net.SplitHostPort(addr)
	var names []string
	for i := range people {
		names = append(names, js(fmt.Sprintf("127.0.0.%d", i+2)))
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "onionchat.toml")
	must(t, os.WriteFile(cfg, []byte(fmt.Sprintf("mode = \"lan\"\n[lan]\nlisten = %q\nnames = [%s]\n[hub]\n%s%s\n",
		addr, strings.Join(names, ", "), testHub, hub)), 0o600))
	r := &lanRoom{addr: addr, args: []string{"--config", cfg, "--data-dir", filepath.Join(dir, "data")}}
	r.srv = Start(t, r.args...)
	for i := range people {
		r.recs = append(r.recs, NewRecorderAt(t, fmt.Sprintf("127.0.0.%d:%s", i+2, port), addr))
	}
	return r
}

// url is person i's address of the page, with the room in the fragment.
func (r *lanRoom) url(i int, room string) string {
	return "https://" + r.recs[i].Addr + "/#room=" + strings.ReplaceAll(room, " ", "%20")
}

// restart stops the server (SIGTERM, exit 0), runs during while it is
// down, and starts it again on the same port and data.
func (r *lanRoom) restart(t *testing.T, during func()) {
	t.Helper()
	must(t, r.srv.Signal(syscall.SIGTERM))
	if code := r.srv.Wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if during != nil {
		during()
	}
	r.srv = Start(t, r.args...)
}

// rawClient is a WebSocket client that speaks relay frames by hand, as an
// outsider's script would.
type rawClient struct {
	t  *testing.T
	ws *websocket.Conn
}

func (r *lanRoom) raw(t *testing.T) *rawClient {
	t.Helper()
	d := websocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, HandshakeTimeout: waitShort}
	ws, _, err := d.Dial("wss://"+r.addr+"/ws", http.Header{"Origin": {"https://" + r.addr}})
	must(t, err)
	t.Cleanup(func() { ws.Close() })
	return &rawClient{t: t, ws: ws}
}

func (c *rawClient) Send(frame string) {
	c.t.Helper()
	must(c.t, c.ws.WriteMessage(websocket.TextMessage, []byte(frame)))
}

// Expect reads frames until one of type typ, bounded by waitShort.
func (c *rawClient) Expect(typ string) map[string]any {
	c.t.Helper()
	return c.ExpectOneOf(typ)
}

// ExpectOneOf reads frames until one of one of types, bounded by
// waitShort.
func (c *rawClient) ExpectOneOf(types ...string) map[string]any {
	c.t.Helper()
	c.ws.SetReadDeadline(time.Now().Add(waitShort))
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			c.t.Fatalf("waiting for a frame of type %s: %v", strings.Join(types, " or "), err)
		}
		var f map[string]any
		if json.Unmarshal(b, &f) != nil {
			continue
		}
		if typ, _ := f["type"].(string); slices.Contains(types, typ) {
			return f
		}
	}
}
