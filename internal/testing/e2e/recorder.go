package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Recorder is a TLS proxy on 127.0.0.1 that sits between browsers and the
// real server and keeps a copy of every byte each side sent, decrypted, so
// that a test can check what the server was given. Browsers reach it as if
// it were the server (same Host, so the server's same-origin check holds);
// it dials the server over TLS for each connection.
//
// A test can also cut the link it carries, as a flaky network does: Cut
// with CutReset resets every connection (TCP RST) and every new one until
// Restore; with CutSilent it stops passing bytes either way while keeping
// the connections open (half-open), and new ones get nowhere, until
// Restore. Connections cut silently stay dead after Restore, as a dead Tor
// circuit does.
type Recorder struct {
	Addr string // host:port browsers connect to

	upstream string
	dialer   net.Dialer
	ln       net.Listener
	wg       sync.WaitGroup
	cut      atomic.Int32

	mu    sync.Mutex
	conns []*recorded
	open  int // connections open now
	peak  int // the most open at once
}

// Ways to cut a Recorder's link.
const (
	CutReset  = 1 // every connection is reset
	CutSilent = 2 // nothing passes; nobody is told (half-open)
)

type recorded struct {
	up, down bytes.Buffer // bytes sent to the server, and from it
	client   net.Conn     // the browser's side
	server   net.Conn
	silenced atomic.Bool
}

// NewRecorder starts a recording proxy for upstream (host:port of an HTTPS
// server) on 127.0.0.1 and stops it when the test ends.
func NewRecorder(t testing.TB, upstream string) *Recorder {
	return NewRecorderAt(t, "127.0.0.1:0", upstream)
}

// NewRecorderAt starts a recording proxy listening on listen, which dials
// upstream from listen's address: the server counts the connections it
// carries as one peer of their own. With the server's port and an address
// in the server's lan.names, browsers reach it under a name the server
// answers to.
func NewRecorderAt(t testing.TB, listen, upstream string) *Recorder {
	t.Helper()
	cert, err := selfSigned()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", listen, &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	r := &Recorder{Addr: ln.Addr().String(), upstream: upstream, ln: ln}
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "127.0.0.1" {
		r.dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(host)}
	}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(func() {
		ln.Close()
		r.wg.Wait()
	})
	return r
}

func (r *Recorder) accept() {
	defer r.wg.Done()
	var conns sync.WaitGroup
	var open []net.Conn
	var mu sync.Mutex
	defer func() {
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		conns.Wait()
	}()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		switch r.cut.Load() {
		case CutReset:
			reset(c)
			continue
		}
		rec := &recorded{client: c}
		rec.silenced.Store(r.cut.Load() == CutSilent)
		r.mu.Lock()
		r.conns = append(r.conns, rec)
		r.open++
		r.peak = max(r.peak, r.open)
		r.mu.Unlock()
		conns.Add(1)
		go func() {
			defer conns.Done()
			defer func() { r.mu.Lock(); r.open--; r.mu.Unlock() }()
			up, err := tls.DialWithDialer(&r.dialer, "tcp", r.upstream, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				c.Close()
				return
			}
			r.mu.Lock()
			rec.server = up
			r.mu.Unlock()
			mu.Lock()
			open = append(open, c, up)
			mu.Unlock()
			done := make(chan struct{}, 2)
			go func() { copyRec(up, c, &rec.up, rec, r); up.Close(); done <- struct{}{} }()
			go func() { copyRec(c, up, &rec.down, rec, r); c.Close(); done <- struct{}{} }()
			<-done
			<-done
		}()
	}
}

func copyRec(dst io.Writer, src io.Reader, buf *bytes.Buffer, rec *recorded, r *Recorder) {
	b := make([]byte, 32<<10)
	for {
		n, err := src.Read(b)
		if n > 0 && !rec.silenced.Load() {
			r.mu.Lock()
			buf.Write(b[:n])
			r.mu.Unlock()
			if _, werr := dst.Write(b[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Conns returns how many connections browsers made through r, and the
// most that were open at once.
func (r *Recorder) Conns() (total, peak int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.conns), r.peak
}

// Cut cuts the link the Recorder carries (CutReset or CutSilent) until
// Restore.
func (r *Recorder) Cut(how int32) {
	r.cut.Store(how)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		switch how {
		case CutReset:
			reset(c.client)
			if c.server != nil {
				c.server.Close()
			}
		case CutSilent:
			c.silenced.Store(true)
		}
	}
}

// Restore lets new connections through again.
func (r *Recorder) Restore() { r.cut.Store(0) }

// reset closes a connection with a TCP reset, as a dropped route does.
func reset(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// Sent returns, for every connection, what clients sent to the server:
// the HTTP bytes as they were, and the payload of every WebSocket frame
// after an upgrade, unmasked.
func (r *Recorder) Sent() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]byte
	for _, c := range r.conns {
		out = append(out, append([]byte(nil), c.up.Bytes()...))
		out = append(out, wsPayloads(c.up.Bytes(), true)...)
	}
	return out
}

// Received returns what the server sent to clients, likewise.
func (r *Recorder) Received() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]byte
	for _, c := range r.conns {
		out = append(out, append([]byte(nil), c.down.Bytes()...))
		out = append(out, wsPayloads(c.down.Bytes(), false)...)
	}
	return out
}

// WSFrames counts the WebSocket frames clients sent, over all connections.
func (r *Recorder) WSFrames() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.conns {
		n += len(wsPayloads(c.up.Bytes(), true))
	}
	return n
}

// wsPayloads parses the WebSocket frames that follow an HTTP upgrade in a
// recorded stream (RFC 6455 section 5.2) and returns their payloads.
func wsPayloads(stream []byte, fromClient bool) [][]byte {
	marker := []byte("\r\n\r\n")
	if fromClient {
		if !bytes.HasPrefix(stream, []byte("GET /ws ")) {
			return nil
		}
	} else if !bytes.HasPrefix(stream, []byte("HTTP/1.1 101 ")) {
		return nil
	}
	i := bytes.Index(stream, marker)
	if i < 0 {
		return nil
	}
	b := stream[i+len(marker):]
	var out [][]byte
	for len(b) >= 2 {
		masked := b[1]&0x80 != 0
		n := uint64(b[1] & 0x7f)
		h := 2
		switch n {
		case 126:
			if len(b) < 4 {
				return out
			}
			n, h = uint64(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			if len(b) < 10 {
				return out
			}
			n, h = binary.BigEndian.Uint64(b[2:]), 10
		}
		var key []byte
		if masked {
			if len(b) < h+4 {
				return out
			}
			key = b[h : h+4]
			h += 4
		}
		if uint64(len(b)-h) < n {
			return out
		}
		p := append([]byte(nil), b[h:h+int(n)]...)
		for j := range p {
			if masked {
				p[j] ^= key[j%4]
			}
		}
		out = append(out, p)
		b = b[h+int(n):]
	}
	return out
}
