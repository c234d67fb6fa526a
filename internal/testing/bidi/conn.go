package bidi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// CommandError is an error answer from the browser to a command.
type CommandError struct {
	Method  string // the command, e.g. "browsingContext.navigate"
	Code    string // the WebDriver error code, e.g. "no such frame"
	Message string
}

func (e *CommandError) Error() string {
	if e.Message == "" {
		return e.Method + ": " + e.Code
	}
	return e.Method + ": " + e.Code + ": " + e.Message
}

// ErrClosed is returned by commands once the connection to the browser is
// gone.
var ErrClosed = errors.New("bidi: connection closed")

// Event is one event from the browser, e.g. "script.message".
type Event struct {
	Method string
	Params json.RawMessage
}

// maxEvents bounds how many events of each kind are kept.
const maxEvents = 10000

// conn is the session's WebSocket: one reader goroutine dispatches answers
// by command id and records events; writers take turns.
type conn struct {
	ws          *websocket.Conn
	callTimeout time.Duration
	logf        func(string, ...any)

	writeMu sync.Mutex

	mu       sync.Mutex
	nextID   int64
	pending  map[int64]chan message
	msgs     []Message
	logs     []LogEntry
	handlers map[int]func(Event)
	nextH    int
	changed  chan struct{} // closed and replaced whenever something is recorded
	readErr  error         // why the reader stopped; set before done is closed

	done chan struct{} // closed when the reader has stopped
}

// message is any frame from the browser.
type message struct {
	Type    string          `json:"type"` // "success", "error" or "event"
	ID      *int64          `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
}

func newConn(ws *websocket.Conn, callTimeout time.Duration, logf func(string, ...any)) *conn {
	c := &conn{
		ws: ws, callTimeout: callTimeout, logf: logf,
		pending:  map[int64]chan message{},
		handlers: map[int]func(Event){},
		changed:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	go c.read()
	return c
}

func (c *conn) read() {
	var err error
	for {
		var m message
		if err = c.ws.ReadJSON(&m); err != nil {
			break
		}
		if m.Type == "event" {
			c.event(Event{Method: m.Method, Params: m.Params})
			continue
		}
		if m.ID == nil {
			c.logf("bidi: answer without id: %s %s", m.Error, m.Message)
			continue
		}
		c.mu.Lock()
		ch := c.pending[*m.ID]
		delete(c.pending, *m.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- m // buffered, and only this goroutine sends
		}
	}
	c.mu.Lock()
	c.readErr = fmt.Errorf("%w: %v", ErrClosed, err)
	c.mu.Unlock()
	close(c.done)
}

// event records e and passes it to the handlers, on the reader goroutine.
func (c *conn) event(e Event) {
	var note string
	c.mu.Lock()
	switch e.Method {
	case "script.message":
		if m, err := parseMessage(e.Params); err == nil {
			c.msgs = appendBounded(c.msgs, m)
		} else {
			note = fmt.Sprintf("bidi: %s: %v", e.Method, err)
		}
	case "log.entryAdded":
		if l, err := parseLogEntry(e.Params); err == nil {
			c.logs = appendBounded(c.logs, l)
			note = fmt.Sprintf("bidi: %s %s in context %s: %s", l.Type, l.Level, l.Context, l.Text)
		} else {
			note = fmt.Sprintf("bidi: %s: %v", e.Method, err)
		}
	}
	hs := make([]func(Event), 0, len(c.handlers))
	for _, h := range c.handlers {
		hs = append(hs, h)
	}
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	if note != "" {
		c.logf("%s", note)
	}
	for _, h := range hs {
		h(e)
	}
}

func appendBounded[T any](s []T, v T) []T {
	if len(s) >= maxEvents {
		s = append(s[:0], s[len(s)-maxEvents/2:]...)
	}
	return append(s, v)
}

// call sends a command and decodes its result into out (unless nil). It
// returns when the answer arrives, ctx ends, or the connection drops; a
// late answer is dropped.
func (c *conn) call(ctx context.Context, method string, params any, out any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.callTimeout)
		defer cancel()
	}
	select {
	case <-c.done:
		return fmt.Errorf("%s: %w", method, c.readErr)
	default:
	}
	ch := make(chan message, 1)
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()

	frame, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	c.writeMu.Lock()
	deadline, _ := ctx.Deadline()
	c.ws.SetWriteDeadline(deadline)
	err = c.ws.WriteMessage(websocket.TextMessage, frame)
	c.writeMu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}

	select {
	case m := <-ch:
		if m.Type == "error" {
			return &CommandError{Method: method, Code: m.Error, Message: m.Message}
		}
		if out != nil {
			if err := json.Unmarshal(m.Result, out); err != nil {
				return fmt.Errorf("%s: decoding result: %w", method, err)
			}
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	case <-c.done:
		return fmt.Errorf("%s: %w", method, c.readErr)
	}
}

// close closes the socket and waits for the reader to stop.
func (c *conn) close() {
	c.writeMu.Lock()
	c.ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.writeMu.Unlock()
	c.ws.Close()
	<-c.done
}

// subscribe asks the browser to send events (see Browser.Subscribe).
func (c *conn) subscribe(ctx context.Context, events ...string) error {
	if err := c.call(ctx, "session.subscribe", map[string]any{"events": events}, nil); err != nil {
		return fmt.Errorf("bidi: subscribe: %w", err)
	}
	return nil
}

func (c *conn) onEvent(fn func(Event)) (remove func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextH++
	h := c.nextH
	c.handlers[h] = fn
	return func() {
		c.mu.Lock()
		delete(c.handlers, h)
		c.mu.Unlock()
	}
}

// messages returns the recorded script.message events on channel, from
// the browsing context tab ("" for all).
func (c *conn) messages(channel, tab string) []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Message
	for _, m := range c.msgs {
		if m.Channel == channel && (tab == "" || m.Context == tab) {
			out = append(out, m)
		}
	}
	return out
}

// waitMessage waits for a recorded or future message on channel from
// the browsing context tab ("" for any) that match accepts (nil accepts any).
func (c *conn) waitMessage(ctx context.Context, channel, tab string, match func(Message) bool) (Message, error) {
	seen := 0
	for {
		c.mu.Lock()
		if seen > len(c.msgs) { // the record was trimmed: rescan
			seen = 0
		}
		for ; seen < len(c.msgs); seen++ {
			m := c.msgs[seen]
			if m.Channel == channel && (tab == "" || m.Context == tab) && (match == nil || match(m)) {
				c.mu.Unlock()
				return m, nil
			}
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return Message{}, fmt.Errorf("bidi: waiting for a message on %q: %w", channel, ctx.Err())
		case <-c.done:
			return Message{}, fmt.Errorf("bidi: waiting for a message on %q: %w", channel, c.readErr)
		}
	}
}

// logEntries returns the recorded log entries from the browsing
// context tab ("" for all)
// of the given level ("" for all).
func (c *conn) logEntries(tab, level string) []LogEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []LogEntry
	for _, l := range c.logs {
		if (tab == "" || l.Context == tab) && (level == "" || l.Level == level) {
			out = append(out, l)
		}
	}
	return out
}
