// Package wstest is a WebSocket client for onionchat's tests and tools:
// it dials the hub, sends protocol frames and waits, with a bound, for the
// frames a test expects. It is test support and holds no server logic.
package wstest

import (
	"crypto/sha256"
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

// Version is the relay protocol version the client speaks.
const Version = 2

// Client is one WebSocket connection to the hub.
type Client struct {
	*websocket.Conn
	t testing.TB

	// Server is the server frame that opens every connection (nil if the
	// first frame was something else, such as a refusal, which Read then
	// returns first).
	Server Frame
	first  Frame
}

// Frame is a decoded server frame.
type Frame map[string]any

// Str returns a string field, or "".
func (f Frame) Str(k string) string { s, _ := f[k].(string); return s }

// Int returns a numeric field, or -1 if it is absent.
func (f Frame) Int(k string) int64 {
	if v, ok := f[k].(float64); ok {
		return int64(v)
	}
	return -1
}

// Type returns the frame's type.
func (f Frame) Type() string { return f.Str("type") }

// Names returns the names of a welcome's member list, in its order.
func Names(welcome Frame) []string {
	var out []string
	ms, _ := welcome["members"].([]any)
	for _, m := range ms {
		mm, _ := m.(map[string]any)
		n, _ := mm["name"].(string)
		out = append(out, n)
	}
	return out
}

// RoomID returns the room id tests use for a room called name: the first
// 16 bytes of its SHA-256 in unpadded base64url, shaped like the id a page
// derives from a room's secret.
func RoomID(name string) string {
	sum := sha256.Sum256([]byte(name))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// Dial connects to url (http(s):// or ws(s)://, path /ws added if absent),
// sending an Origin that matches the URL as a browser would, and reads the
// server frame. TLS certificates are not verified: tests use self-signed
// ones.
func Dial(t testing.TB, url string) *Client {
	t.Helper()
	c, _, err := DialOrigin(url, "")
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c.t = t
	t.Cleanup(func() { c.Close() })
	c.readServer()
	return c
}

// DialJoin dials url and joins room as name, failing the test unless a
// welcome comes back.
func DialJoin(t testing.TB, url, room, name string) *Client {
	t.Helper()
	c := Dial(t, url)
	c.JoinOK(room, name)
	return c
}

// New wraps a connection dialed some other way (through a proxy, say) and
// reads the server frame. The connection is closed when the test ends.
func New(t testing.TB, ws *websocket.Conn) *Client {
	t.Helper()
	t.Cleanup(func() { ws.Close() })
	c := &Client{Conn: ws, t: t}
	c.readServer()
	return c
}

func (c *Client) readServer() {
	c.t.Helper()
	f, err := c.Read(Timeout)
	if err != nil {
		c.t.Fatalf("no server frame: %v", err)
	}
	if f.Type() == "server" {
		c.Server = f
	} else {
		c.first = f
	}
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

// Join sends a join frame for the room called room (see RoomID).
func (c *Client) Join(room, name string) {
	c.Send(map[string]any{"v": Version, "type": "join", "room": RoomID(room), "name": name})
}

// JoinOK joins and fails the test unless a welcome comes back.
func (c *Client) JoinOK(room, name string) Frame {
	c.t.Helper()
	c.Join(room, name)
	return c.Expect("welcome")
}

// Pair joins a as alice and b as bob to room and waits until alice is
// told that bob joined: two friends ready to chat.
func Pair(a, b *Client, room string) {
	a.t.Helper()
	a.JoinOK(room, "alice")
	b.JoinOK(room, "bob")
	a.Expect("join")
}

// Says sends body to the room and fails the test unless to's next frame
// is that message, from the member called from (c's name).
func (c *Client) Says(to *Client, from, body string) {
	c.t.Helper()
	c.Msg(body)
	if f := to.Expect("msg"); Body(f) != body || f.Str("from") != from {
		c.t.Fatalf("got %v, want %q from %s", f, body, from)
	}
}

// Resume sends a join that takes back the session of an earlier welcome,
// which had everything up to seq since.
func (c *Client) Resume(room string, welcome Frame, since int64) {
	c.Send(map[string]any{"v": Version, "type": "join", "room": RoomID(room), "name": welcome.Str("you"),
		"resume": welcome.Str("resume"), "since": since})
}

// Msg sends body (base64-encoded here) to the room.
func (c *Client) Msg(body string) {
	c.Send(map[string]any{"v": Version, "type": "msg", "body": base64.StdEncoding.EncodeToString([]byte(body))})
}

// MsgID sends body to the room with an id, for which the hub answers with
// sent.
func (c *Client) MsgID(body string, id int64) {
	c.Send(map[string]any{"v": Version, "type": "msg", "body": base64.StdEncoding.EncodeToString([]byte(body)), "id": id})
}

// MsgTo sends body to one member.
func (c *Client) MsgTo(body, to string) {
	c.Send(map[string]any{"v": Version, "type": "msg", "body": base64.StdEncoding.EncodeToString([]byte(body)), "to": to})
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
	if f := c.first; f != nil {
		c.first = nil
		return f, nil
	}
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

// Leave closes the connection as a page does when its member leaves: a
// close frame (1000), then the server's answer, so that the session has
// ended when it returns.
func (c *Client) Leave() {
	c.t.Helper()
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(Timeout))
	if code := c.ExpectClose(); code != websocket.CloseNormalClosure {
		c.t.Fatalf("leave: close %d, want 1000", code)
	}
	c.Close()
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
