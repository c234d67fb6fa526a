package onion

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// proxyHeaderTimeout bounds how long an accepted connection may take to
// send its PROXY header (tor sends it at once).
const proxyHeaderTimeout = 10 * time.Second

// maxProxyHeader is the longest PROXY protocol v1 line (haproxy's spec).
const maxProxyHeader = 107

// CircuitListener wraps a listener whose connections start with the PROXY
// protocol v1 line that tor sends with "HiddenServiceExportCircuitID
// haproxy". Each connection's RemoteAddr is then the circuit's address
// (fc00:dead:beef:4dad::/96 plus the 32-bit global circuit id), so that
// limits keyed by remote address count per Tor circuit: every onion
// visitor otherwise arrives from the same local socket.
//
// The header is read lazily, by the connection's own goroutine on its
// first RemoteAddr or Read, so one slow connection never holds up Accept.
// A connection without a valid header fails its reads.
type CircuitListener struct{ net.Listener }

// Accept implements net.Listener.
func (l CircuitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &circuitConn{Conn: c}, nil
}

type circuitConn struct {
	net.Conn
	once sync.Once
	r    *bufio.Reader
	addr net.Addr
	err  error
}

// circuitAddr is the remote address of a connection whose header was bad.
type circuitAddr string

func (a circuitAddr) Network() string { return "tor" }
func (a circuitAddr) String() string  { return string(a) }

func (c *circuitConn) header() {
	c.once.Do(func() {
		c.Conn.SetReadDeadline(time.Now().Add(proxyHeaderTimeout))
		defer c.Conn.SetReadDeadline(time.Time{})
		c.r = bufio.NewReaderSize(c.Conn, 128)
		var line []byte
		for len(line) <= maxProxyHeader {
			b, err := c.r.ReadByte()
			if err != nil {
				c.err = fmt.Errorf("onion: read PROXY header: %w", err)
				break
			}
			line = append(line, b)
			if b == '\n' {
				break
			}
		}
		if c.err == nil {
			c.addr, c.err = ParseProxyHeader(string(line))
		}
		if c.err != nil {
			c.addr = circuitAddr("invalid")
		}
	})
}

// CloseWrite shuts down the writing side, where the socket supports it.
func (c *circuitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

func (c *circuitConn) RemoteAddr() net.Addr {
	c.header()
	return c.addr
}

func (c *circuitConn) Read(p []byte) (int, error) {
	c.header()
	if c.err != nil {
		return 0, c.err
	}
	if c.r.Buffered() > 0 {
		return c.r.Read(p)
	}
	return c.Conn.Read(p)
}

// ParseProxyHeader parses a PROXY protocol v1 line such as
// "PROXY TCP6 fc00:dead:beef:4dad::ffff:ffff ::1 65535 42\r\n" and returns
// the source address.
func ParseProxyHeader(line string) (*net.TCPAddr, error) {
	rest, ok := strings.CutSuffix(line, "\r\n")
	if !ok {
		return nil, errors.New("onion: PROXY header without CRLF")
	}
	f := strings.Split(rest, " ")
	if len(f) != 6 || f[0] != "PROXY" || (f[1] != "TCP6" && f[1] != "TCP4") {
		return nil, errBadHeader
	}
	ip := net.ParseIP(f[2])
	port, err := strconv.ParseUint(f[4], 10, 16)
	if ip == nil || net.ParseIP(f[3]) == nil || err != nil {
		return nil, errBadHeader
	}
	if _, err := strconv.ParseUint(f[5], 10, 16); err != nil {
		return nil, errBadHeader
	}
	return &net.TCPAddr{IP: ip, Port: int(port)}, nil
}

// errBadHeader says nothing of what the header held: it came from outside.
var errBadHeader = errors.New("onion: bad PROXY header")

// CircuitID returns the global circuit identifier tor encodes in the
// last 32 bits of a circuit address.
func CircuitID(a *net.TCPAddr) uint32 {
	ip := a.IP.To16()
	if ip == nil {
		return 0
	}
	return uint32(ip[12])<<24 | uint32(ip[13])<<16 | uint32(ip[14])<<8 | uint32(ip[15])
}
