package bidi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Keys for Type that are not characters (WebDriver's key codes).
const (
	KeyEnter     = "\uE007"
	KeyTab       = "\uE004"
	KeyBackspace = "\uE003"
	KeyEscape    = "\uE00C"
)

// PollInterval is how often WaitFor evaluates its condition.
var PollInterval = 50 * time.Millisecond

// Tab is a top-level browsing context in a user context of its own: it
// shares no cookies, storage or cache with other Tabs. Each Tab is the only
// tab of its own window, so that every Tab's page stays visible and its
// timers run at full speed (a tab behind another is hidden and throttled).
type Tab struct {
	b           *Browser
	ID          string // browsing context id
	UserContext string // user context id
}

// NewTab creates a user context and a window with one tab in it.
func (b *Browser) NewTab(ctx context.Context) (*Tab, error) {
	var uc struct {
		UserContext string `json:"userContext"`
	}
	if err := b.c.call(ctx, "browser.createUserContext", map[string]any{}, &uc); err != nil {
		return nil, fmt.Errorf("bidi: new tab: %w", err)
	}
	var bc struct {
		Context string `json:"context"`
	}
	err := b.c.call(ctx, "browsingContext.create", map[string]any{
		"type": "window", "userContext": uc.UserContext,
	}, &bc)
	if err != nil {
		return nil, fmt.Errorf("bidi: new tab: %w", err)
	}
	return &Tab{b: b, ID: bc.Context, UserContext: uc.UserContext}, nil
}

// Close closes the tab and removes its user context.
func (t *Tab) Close(ctx context.Context) error {
	if err := t.b.c.call(ctx, "browsingContext.close", map[string]any{"context": t.ID}, nil); err != nil {
		return fmt.Errorf("bidi: close tab: %w", err)
	}
	if err := t.b.c.call(ctx, "browser.removeUserContext", map[string]any{"userContext": t.UserContext}, nil); err != nil {
		return fmt.Errorf("bidi: close tab: %w", err)
	}
	return nil
}

// Navigate loads url and waits until the page's load event has fired.
func (t *Tab) Navigate(ctx context.Context, url string) error {
	err := t.b.c.call(ctx, "browsingContext.navigate", map[string]any{
		"context": t.ID, "url": url, "wait": "complete",
	}, nil)
	if err != nil {
		return fmt.Errorf("bidi: navigate to %s: %w", url, err)
	}
	return nil
}

// Eval evaluates the JavaScript expression js in the page, waits for it if
// it is a promise, and returns its value converted as by RemoteValue.Go. A
// thrown exception is a *ScriptError. It runs with user activation, as if
// the user had just clicked.
func (t *Tab) Eval(ctx context.Context, js string) (any, error) {
	rv, err := t.eval(ctx, js)
	if err != nil {
		return nil, fmt.Errorf("bidi: eval: %w", err)
	}
	v, err := rv.Go()
	if err != nil {
		return nil, fmt.Errorf("bidi: eval: converting %s result: %w", rv.Type, err)
	}
	return v, nil
}

func (t *Tab) eval(ctx context.Context, js string) (RemoteValue, error) {
	var res struct {
		Type      string      `json:"type"`
		Result    RemoteValue `json:"result"`
		Exception struct {
			Text         string `json:"text"`
			LineNumber   int    `json:"lineNumber"`
			ColumnNumber int    `json:"columnNumber"`
		} `json:"exceptionDetails"`
	}
	err := t.b.c.call(ctx, "script.evaluate", map[string]any{
		"expression":     js,
		"target":         map[string]any{"context": t.ID},
		"awaitPromise":   true,
		"userActivation": true,
	}, &res)
	if err != nil {
		return RemoteValue{}, err
	}
	if res.Type == "exception" {
		e := res.Exception
		return RemoteValue{}, &ScriptError{Text: e.Text, Line: e.LineNumber, Column: e.ColumnNumber}
	}
	return res.Result, nil
}

// WaitFor evaluates js every PollInterval until its value is truthy, for
// at most timeout (and within ctx). Exceptions while polling (say, during
// a navigation) do not stop it. On timeout the error tells the last value
// and the last exception.
func (t *Tab) WaitFor(ctx context.Context, js string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last any
	var lastErr error
	for {
		v, err := t.Eval(ctx, js)
		if err == nil && Truthy(v) {
			return nil
		}
		if err != nil && errors.Is(err, ErrClosed) {
			return fmt.Errorf("bidi: wait for %s: %w", short(js), err)
		}
		if err != nil && ctx.Err() == nil {
			lastErr = err
		} else if err == nil {
			last = v
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bidi: wait for %s: %w (last value %s, last error %v)",
				short(js), ctx.Err(), short(fmt.Sprintf("%#v", last)), lastErr)
		case <-time.After(PollInterval):
		}
	}
}

// short abbreviates s for error messages.
func short(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// Screenshot captures the tab's viewport as a PNG.
func (t *Tab) Screenshot(ctx context.Context) ([]byte, error) {
	var res struct {
		Data string `json:"data"`
	}
	if err := t.b.c.call(ctx, "browsingContext.captureScreenshot", map[string]any{"context": t.ID}, &res); err != nil {
		return nil, fmt.Errorf("bidi: screenshot: %w", err)
	}
	png, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil {
		return nil, fmt.Errorf("bidi: screenshot: %w", err)
	}
	return png, nil
}

// Type focuses the first element matching the CSS selector and types text
// into it with real (trusted) key events, one key per character; text may
// hold KeyEnter and the other Key constants.
func (t *Tab) Type(ctx context.Context, selector, text string) error {
	_, err := t.eval(ctx, fmt.Sprintf(`(() => {
		const el = document.querySelector(%s);
		if (!el) throw new Error("no element matches " + %[1]s);
		el.focus();
		if (document.activeElement !== el) throw new Error("cannot focus " + %[1]s);
	})()`, JS(selector)))
	if err != nil {
		return fmt.Errorf("bidi: type into %s: %w", selector, err)
	}
	var keys []any
	for _, r := range text {
		keys = append(keys,
			map[string]any{"type": "keyDown", "value": string(r)},
			map[string]any{"type": "keyUp", "value": string(r)})
	}
	if err := t.perform(ctx, map[string]any{"type": "key", "id": "keyboard", "actions": keys}); err != nil {
		return fmt.Errorf("bidi: type into %s: %w", selector, err)
	}
	return nil
}

// Click scrolls the first element matching the CSS selector into view and
// clicks its centre with real (trusted) mouse events.
func (t *Tab) Click(ctx context.Context, selector string) error {
	el, err := t.eval(ctx, fmt.Sprintf(`(() => {
		const el = document.querySelector(%s);
		if (!el) throw new Error("no element matches " + %[1]s);
		el.scrollIntoView({block: "center", inline: "center"});
		return el;
	})()`, JS(selector)))
	if err == nil && el.SharedID == "" {
		err = fmt.Errorf("got a %s, not an element", el.Type)
	}
	if err != nil {
		return fmt.Errorf("bidi: click %s: %w", selector, err)
	}
	err = t.perform(ctx, map[string]any{
		"type": "pointer", "id": "mouse", "parameters": map[string]any{"pointerType": "mouse"},
		"actions": []any{
			map[string]any{"type": "pointerMove", "x": 0, "y": 0,
				"origin": map[string]any{"type": "element", "element": map[string]any{"sharedId": el.SharedID}}},
			map[string]any{"type": "pointerDown", "button": 0},
			map[string]any{"type": "pointerUp", "button": 0},
		},
	})
	if err != nil {
		return fmt.Errorf("bidi: click %s: %w", selector, err)
	}
	return nil
}

// perform runs one input source's actions and releases its state.
func (t *Tab) perform(ctx context.Context, source map[string]any) error {
	err := t.b.c.call(ctx, "input.performActions", map[string]any{
		"context": t.ID, "actions": []any{source},
	}, nil)
	if err != nil {
		return err
	}
	return t.b.c.call(ctx, "input.releaseActions", map[string]any{"context": t.ID}, nil)
}

// Messages returns the messages received so far on channel from this tab.
func (t *Tab) Messages(channel string) []Message {
	return t.b.c.messages(channel, t.ID)
}

// WaitMessage is Browser.WaitMessage for messages from this tab only.
func (t *Tab) WaitMessage(ctx context.Context, channel string, match func(Message) bool) (Message, error) {
	return t.b.c.waitMessage(ctx, channel, t.ID, match)
}

// Logs returns the log entries received so far from this tab.
func (t *Tab) Logs() []LogEntry {
	return t.b.c.logEntries(t.ID, "")
}

// Errors returns the log entries of level "error" from this tab.
func (t *Tab) Errors() []LogEntry {
	return t.b.c.logEntries(t.ID, "error")
}

// SetViewport sets the size of the tab's viewport in CSS pixels, as a
// phone's or a desktop's screen.
func (t *Tab) SetViewport(ctx context.Context, width, height int) error {
	err := t.b.c.call(ctx, "browsingContext.setViewport", map[string]any{
		"context": t.ID, "viewport": map[string]any{"width": width, "height": height},
	}, nil)
	if err != nil {
		return fmt.Errorf("bidi: set viewport: %w", err)
	}
	return nil
}

// Wheel turns the mouse wheel over the centre of the first element
// matching the CSS selector by dy pixels (negative: up), as a person
// scrolling does: trusted wheel events, then the scroll they cause.
func (t *Tab) Wheel(ctx context.Context, selector string, dy int) error {
	v, err := t.Eval(ctx, fmt.Sprintf(`(() => {
		const el = document.querySelector(%s);
		if (!el) throw new Error("no element matches " + %[1]s);
		const r = el.getBoundingClientRect();
		return [Math.round((r.left + r.right) / 2), Math.round((r.top + r.bottom) / 2)];
	})()`, JS(selector)))
	if err != nil {
		return fmt.Errorf("bidi: wheel over %s: %w", selector, err)
	}
	xy, ok := v.([]any)
	if !ok || len(xy) != 2 {
		return fmt.Errorf("bidi: wheel over %s: got %v", selector, v)
	}
	err = t.perform(ctx, map[string]any{
		"type": "wheel", "id": "wheel",
		"actions": []any{map[string]any{"type": "scroll", "x": xy[0], "y": xy[1], "deltaX": 0, "deltaY": dy}},
	})
	if err != nil {
		return fmt.Errorf("bidi: wheel over %s: %w", selector, err)
	}
	return nil
}
