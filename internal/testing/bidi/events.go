package bidi

import (
	"context"
	"fmt"
)

// Call sends any BiDi command and decodes its result into out (unless
// nil): the way to reach what this package does not wrap. A refusal is a
// *CommandError.
func (b *Browser) Call(ctx context.Context, method string, params, out any) error {
	if params == nil {
		params = map[string]any{}
	}
	if err := b.c.call(ctx, method, params, out); err != nil {
		return fmt.Errorf("bidi: %w", err)
	}
	return nil
}

// Subscribe asks the browser to send the named events (or whole modules,
// e.g. "browsingContext") for all tabs; see OnEvent. Launch has already
// subscribed to "script.message" and "log.entryAdded", which are recorded
// (Messages, Logs).
func (b *Browser) Subscribe(ctx context.Context, events ...string) error {
	return b.c.subscribe(ctx, events...)
}

// OnEvent calls fn for every event that arrives from now on, in order, on
// the goroutine that reads from the browser: fn must return quickly and
// must not call the Browser. The returned func stops the calls.
func (b *Browser) OnEvent(fn func(Event)) (remove func()) {
	return b.c.onEvent(fn)
}

// AddPreloadScript installs fn, a JavaScript function declaration, to run
// in every page of every tab before any of the page's own scripts, from the
// next navigation on. fn receives one argument per channel: a function
// that sends its argument to the test as a Message on that channel.
// It returns the script's id.
//
//	b.AddPreloadScript(ctx, `(send) => {
//		addEventListener("securitypolicyviolation", e => send(e.violatedDirective));
//	}`, "csp")
func (b *Browser) AddPreloadScript(ctx context.Context, fn string, channels ...string) (string, error) {
	args := make([]any, len(channels))
	for i, ch := range channels {
		args[i] = map[string]any{"type": "channel", "value": map[string]any{"channel": ch}}
	}
	var res struct {
		Script string `json:"script"`
	}
	err := b.c.call(ctx, "script.addPreloadScript", map[string]any{
		"functionDeclaration": fn,
		"arguments":           args,
	}, &res)
	if err != nil {
		return "", fmt.Errorf("bidi: add preload script: %w", err)
	}
	return res.Script, nil
}

// RemovePreloadScript removes a script added by AddPreloadScript; pages
// already loaded keep what it did.
func (b *Browser) RemovePreloadScript(ctx context.Context, id string) error {
	if err := b.c.call(ctx, "script.removePreloadScript", map[string]any{"script": id}, nil); err != nil {
		return fmt.Errorf("bidi: remove preload script: %w", err)
	}
	return nil
}

// Messages returns the messages received so far on channel, from all
// tabs, oldest first.
func (b *Browser) Messages(channel string) []Message {
	return b.c.messages(channel, "")
}

// WaitMessage waits, bounded by ctx, for a message on channel from any
// tab that match accepts (nil accepts any), counting those that arrived
// before the call.
func (b *Browser) WaitMessage(ctx context.Context, channel string, match func(Message) bool) (Message, error) {
	return b.c.waitMessage(ctx, channel, "", match)
}

// Logs returns the log entries received so far from all tabs, oldest
// first: console calls, uncaught exceptions, CSP violations (see
// LogEntry). Options.Logf sees them too as they arrive.
func (b *Browser) Logs() []LogEntry {
	return b.c.logEntries("", "")
}

// Errors returns the log entries of level "error" from all tabs: useful
// to print when a test fails.
func (b *Browser) Errors() []LogEntry {
	return b.c.logEntries("", "error")
}
