// Package wstest is a WebSocket client for onionchat's tests and tools:
// it dials the hub, sends protocol frames and waits, with a bound, for the
// frames a test expects. It is test support and holds no server logic.
package wstest

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Timeout bounds every wait of a Client.
var Timeout = 10 * time.Second

// Client is one WebSocket connection to the hub.
type Client struct {
	*websocket.Conn
	t testing.TB
}

// Frame is a decoded server frame.
type Frame map[string]any

// Str returns a string field, or "".
func (f Frame) Str(k string) string { s, _ := f[k].(string); return s }

// Type returns the frame's type.
func (f Frame) Type() string { return f.Str("type") }

// Dial connects to url (http(s):// or ws(s)://, path /ws added if absent),
// sending an Origin that matches the URL as a browser would. TLS
// certificates are not verified: tests use self-signed ones.
func Dial(t testing.TB, url string) *Client {
	t.Helper()
	c, _, err := DialOrigin(url, "")
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c.t = t
	t.Cleanup(func() { c.Close() })
	return c
}

// New wraps a connection dialed some other way (through a proxy, say).
// The connection is closed when the test ends.
func New(t testing.TB, ws *websocket.Conn) *Client {
	t.Cleanup(func() { ws.Close() })
	return &Client{Conn: ws, t: t}
}

// DialOrigin dials with a given Origin header ("" for the URL's own) and
// returns the HTTP response, for tests of refused upgrades.
func DialOrigin(url, origin string) (*Client, *http.Response, error) {
	ws := WSURL(url)
	if origin == "" {
		origin = strings.Replace(strings.Replace(strings.TrimSuffix(ws, "/ws"), "wss://", "https://", 1), "ws://", "http://", 1)
	}
	d := websocket.Dialer{
		TLSClientConfig:  &tls.Config{InsecureSkipVerify: true},
		HandshakeTimeout: Timeout,
	}
	h := http.Header{"Origin": {origin}}
	conn, resp, err := d.Dial(ws, h)
	if err != nil {
		return nil, resp, err
	}
	return &Client{Conn: conn}, resp, nil
}

// WSURL turns an http(s) base URL into the ws(s) URL of /ws.
func WSURL(url string) string {
	url = strings.TrimSuffix(url, "/")
	url = strings.Replace(url, "https://", "wss://", 1)
	url = strings.Replace(url, "http://", "ws://", 1)
	if !strings.HasSuffix(url, "/ws") {
		url += "/ws"
	}
	return url
}

// Send sends v as a JSON text frame.
func (c *Client) Send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatalf("marshal: %v", err)
	}
	c.SendRaw(b)
}

// SendRaw sends b as a text frame.
func (c *Client) SendRaw(b []byte) {
	c.t.Helper()
	c.SetWriteDeadline(time.Now().Add(Timeout))
	if err := c.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// Join sends a join frame.
func (c *Client) Join(room, name string) {
	c.Send(map[string]any{"v": 1, "type": "join", "room": room, "name": name})
}

// JoinOK joins and fails the test unless a welcome comes back.
func (c *Client) JoinOK(room, name string) Frame {
	c.t.Helper()
	c.Join(room, name)
	return c.Expect("welcome")
}

// Msg sends body (base64-encoded here) to the room.
func (c *Client) Msg(body string) {
	c.Send(map[string]any{"v": 1, "type": "msg", "body": base64.StdEncoding.EncodeToString([]byte(body))})
}

// Body decodes a msg frame's body.
func Body(f Frame) string {
	b, _ := base64.StdEncoding.DecodeString(f.Str("body"))
	return string(b)
}

// Next returns the next frame, failing the test after Timeout.
func (c *Client) Next() Frame {
	c.t.Helper()
	f, err := c.Read(Timeout)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

// Read returns the next frame or the error that ended the connection.
func (c *Client) Read(d time.Duration) (Frame, error) {
	c.SetReadDeadline(time.Now().Add(d))
	typ, b, err := c.ReadMessage()
	if err != nil {
		return nil, err
	}
	if typ != websocket.TextMessage {
		return nil, fmt.Errorf("unexpected message type %d", typ)
	}
	var f Frame
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("server sent bad JSON %q: %w", b, err)
	}
	return f, nil
}

// Expect returns the next frame, failing the test unless it has type typ.
func (c *Client) Expect(typ string) Frame {
	c.t.Helper()
	f := c.Next()
	if f.Type() != typ {
		c.t.Fatalf("got %v, want a %q frame", f, typ)
	}
	return f
}

// ExpectError returns the next frame, failing unless it is an error with code.
func (c *Client) ExpectError(code string) Frame {
	c.t.Helper()
	f := c.Expect("error")
	if f.Str("code") != code {
		c.t.Fatalf("got error %v, want code %q", f, code)
	}
	return f
}

// ExpectClose reads until the connection closes and returns the close code
// (or -1 when it ended without a close frame), failing after Timeout.
func (c *Client) ExpectClose() int {
	c.t.Helper()
	deadline := time.Now().Add(Timeout)
	for time.Now().Before(deadline) {
		_, err := c.Read(time.Until(deadline))
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		return -1
	}
	c.t.Fatalf("connection still open after %v", Timeout)
	return 0
}
