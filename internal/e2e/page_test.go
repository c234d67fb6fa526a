package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// driver is what the page scenarios need from a browser tab, so that the
// same steps run in Chromium (CDP) and Firefox (WebDriver BiDi).
type driver interface {
	eval(js string) (any, error)
	waitFor(what, js string, d time.Duration) error
	typeInto(id, text string) error
	enter(id string) error
	click(id string) error
	screenshot() ([]byte, error)
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
	must(t, d.waitFor(name+" ready", `document.documentElement.dataset.state === "ready"`, waitLong))
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
		li.querySelector(".sender").textContent === %s && li.querySelector(".text").textContent === %s)`, js(sender), js(text))
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
	if v, e := d.eval(`document.documentElement.dataset.state + "\n" + [...document.querySelectorAll("#messages li, #members li")].map(li => "  " + li.className + ": " + li.textContent).join("\n")`); e == nil {
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
