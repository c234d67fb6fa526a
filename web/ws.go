package web

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/onionchat/onionchat/hub"
	"github.com/onionchat/onionchat/internal/wsread"
)

type wsHandler struct {
	hub      *hub.Hub
	limit    int64
	upgrader websocket.Upgrader
}

// ServeHTTP upgrades the request and returns at once: the connection's
// reader runs in its own goroutine, so the HTTP server's goroutine and its
// buffers are freed for the life of the connection.
func (wh *wsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mw := &meteredWriter{ResponseWriter: w}
	ws, err := wh.upgrader.Upgrade(mw, r, nil)
	if err != nil {
		return // gorilla has answered with an HTTP error (403 for a foreign Origin)
	}
	c := mw.conn
	c.s = wh.hub.Open(c, hostKey(r.RemoteAddr))
	go readLoop(ws, c, c.s, wh.limit)
}

// meteredWriter hands gorilla the hijacked connection as a conn, so that
// every frame gorilla reads passes the meter.
type meteredWriter struct {
	http.ResponseWriter
	conn *conn
}

func (w *meteredWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = &conn{Conn: nc}
	return w.conn, brw, nil
}

// conn is the upgraded net.Conn, as gorilla reads from it and as the hub
// writes to it (hub.Conn).
//
// The hub's writer writes whole WebSocket frames with one Write; gorilla
// writes to the same net.Conn only for its own protocol-error close
// frames, and net.Conn serialises whole Writes, so frames never
// interleave.
//
// Read counts continuation frames against the client's rate
// (hub.Session.Control), since gorilla assembles a fragmented message
// below its frame handlers and a flood of empty fragments would otherwise
// cost the server a core and the client nothing; a flood of them is closed
// 1008 like any other. A fragment of at least minFragment bytes is paid
// for by its bytes instead (the message's bytes count against the byte
// rate): clients that cut large messages into pieces (gorilla's own, at
// its 4 KiB write buffer) must not be held to the frame rate per piece.
// Other frames are counted where gorilla hands them over. Once the server
// has closed its side Read reads nothing more, so that gorilla stops; the
// connection's lingering reader drains beneath it.
type conn struct {
	net.Conn
	lingering atomic.Bool  // the server has closed its side: the reader drains
	until     atomic.Int64 // when lingering ends, in Unix nanoseconds

	// m and s are the reader's: gorilla reads nothing during the upgrade
	// (v1.5.3, with a ReadBufferSize of its own), and s is set before
	// readLoop starts.
	m wsread.Meter
	s *hub.Session
}

func (c *conn) Read(p []byte) (int, error) {
	if c.lingering.Load() {
		return 0, errLingering
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.m.Scan(p[:n], c.frame)
	}
	return n, err
}

// minFragment is the least payload a continuation frame carries to be
// paid for by its bytes rather than by a token of the frame rate.
const minFragment = 1024

func (c *conn) frame(op byte, _ bool, size uint64) error {
	if op == 0 && size < minFragment { // a small continuation frame
		c.s.Control()
	}
	return nil
}

// lingerTimeout bounds how long a closing connection waits for the client
// to close its side after the server's close frame.
const lingerTimeout = 2 * time.Second

// lingerDrain is how much a closing connection's reader reads while it
// waits for the client to close its side: enough for a close frame and
// whatever a well-behaved client had on its way. A client still sending
// past that (a flooder just closed with 1008) is left to TCP's flow
// control, not read at full speed for lingerTimeout.
const lingerDrain = 64 << 10

// errLingering stops the frame reader once the connection lingers.
var errLingering = errors.New("web: lingering")

type closeWriter interface{ CloseWrite() error }

// CloseGracefully implements hub.GracefulCloser: it ends the server's
// side of the stream (TLS close_notify, then TCP FIN) so that the close
// frame arrives whole, and lets the reader drain until the client closes
// or lingerTimeout passes; the reader then ends the session.
func (c *conn) CloseGracefully() {
	nc := c.Conn
	if tc, ok := nc.(*tls.Conn); ok {
		tc.CloseWrite()
		nc = tc.NetConn()
	}
	if cw, ok := nc.(closeWriter); !ok || cw.CloseWrite() != nil {
		c.Conn.Close()
		return
	}
	until := time.Now().Add(lingerTimeout)
	c.until.Store(until.UnixNano())
	c.Conn.SetReadDeadline(until)
	c.lingering.Store(true)
}

// linger reads and discards up to lingerDrain bytes, until the client
// closes its side or the deadline passes; past that much, it waits out
// the deadline without reading.
func (c *conn) linger() {
	raw := c.Conn
	if tc, ok := raw.(*tls.Conn); ok {
		raw = tc.NetConn() // what is left is never decrypted
	}
	if n, err := io.CopyN(io.Discard, raw, lingerDrain); err == nil && n == lingerDrain {
		time.Sleep(time.Until(time.Unix(0, c.until.Load())))
	}
}

var readPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// readLoop reads client frames into a pooled buffer and hands them to the
// hub until the connection fails, then ends the session. Every frame
// counts against the client's rate, control frames too: a ping over the
// rate goes unanswered, and a flood of them closes the connection (1008).
func readLoop(ws *websocket.Conn, c *conn, s *hub.Session, limit int64) {
	defer s.End()
	ws.SetReadLimit(limit) // gorilla answers a larger frame with close 1009
	ws.SetPongHandler(func(string) error {
		if c.lingering.Load() {
			return errLingering
		}
		s.Control()
		return nil
	})
	ws.SetPingHandler(func(data string) error {
		if c.lingering.Load() {
			return errLingering
		}
		if s.Control() {
			s.Queue(frame(websocket.PongMessage, []byte(data)))
		}
		return nil
	})
	ws.SetCloseHandler(func(code int, _ string) error {
		// Answered with the same code; the session leaves the room at
		// once, unless the page closed with 4001 (reconnecting).
		s.CloseFrame(code)
		return nil
	})
	for {
		if c.lingering.Load() {
			c.linger()
			return
		}
		typ, r, err := ws.NextReader()
		if errors.Is(err, errLingering) {
			c.linger()
			return
		}
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				s.ClientClosed() // closed 1009 for the client's fault
			}
			return
		}
		if typ != websocket.TextMessage {
			s.ClientClosed()
			s.Fail(hub.CloseUnsupported, hub.CodeBinaryRejected, "binary frames are not part of the protocol")
			continue
		}
		bp := readPool.Get().(*[]byte)
		b, err := wsread.Append((*bp)[:0], r)
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				s.ClientClosed()
			}
			*bp = b[:0]
			readPool.Put(bp)
			return
		}
		s.Receive(b)
		if cap(b) <= 64<<10 {
			*bp = b[:0]
			readPool.Put(bp)
		}
	}
}

// noWriteBuffers keeps gorilla from holding a write buffer per connection:
// the hub writes pre-encoded frames itself, so gorilla's buffered writer is
// never used.
type noWriteBuffers struct{}

func (noWriteBuffers) Get() any { return nil }
func (noWriteBuffers) Put(any)  {}

// Wire encodes hub frames as unmasked server-to-client WebSocket frames
// (RFC 6455 section 5.2).
type Wire struct{}

func (Wire) Text(payload []byte) []byte { return frame(websocket.TextMessage, payload) }
func (Wire) Ping() []byte               { return []byte{0x80 | websocket.PingMessage, 0} }

// Close encodes a close frame; reason is cut to fit a control frame.
func (Wire) Close(code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
		for !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	return frame(websocket.CloseMessage, append(p, reason...))
}

func frame(op int, payload []byte) []byte {
	n := len(payload)
	var hdr [10]byte
	hdr[0] = 0x80 | byte(op) // FIN
	h := 2
	switch {
	case n < 126:
		hdr[1] = byte(n)
	case n <= 0xffff:
		hdr[1] = 126
		binary.BigEndian.PutUint16(hdr[2:], uint16(n))
		h = 4
	default:
		hdr[1] = 127
		binary.BigEndian.PutUint64(hdr[2:], uint64(n))
		h = 10
	}
	b := make([]byte, h+n)
	copy(b, hdr[:h])
	copy(b[h:], payload)
	return b
}
