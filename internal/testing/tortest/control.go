package tortest

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// controlTimeout bounds one control-port command, reply included.
const controlTimeout = 15 * time.Second

// control is a connection to a tor's control port, authenticated with the
// cookie. It speaks the synchronous part of the control protocol only
// (commands and their replies, no events), so it needs no goroutine. It is
// not safe for concurrent use; Tor serialises access.
type control struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialControl connects to addr ("127.0.0.1:PORT") and authenticates with
// the 32-byte cookie in cookieFile.
func dialControl(addr, cookieFile string) (*control, error) {
	cookie, err := os.ReadFile(cookieFile)
	if err != nil {
		return nil, fmt.Errorf("read control cookie: %w", err)
	}
	if len(cookie) != 32 {
		return nil, fmt.Errorf("control cookie of %d bytes, want 32", len(cookie))
	}
	conn, err := net.DialTimeout("tcp", addr, controlTimeout)
	if err != nil {
		return nil, fmt.Errorf("dial control port: %w", err)
	}
	c := &control{conn: conn, r: bufio.NewReader(conn)}
	if _, err := c.do("AUTHENTICATE " + hex.EncodeToString(cookie)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("authenticate to control port: %w", err)
	}
	return c, nil
}

// do sends one command line and returns the reply's lines without their
// "250-"/"250 " prefixes (data blocks of "250+" lines are joined into
// their line, dot-unstuffed). A reply other than 250 is an error.
func (c *control) do(cmd string) ([]string, error) {
	if strings.ContainsAny(cmd, "\r\n") {
		return nil, errors.New("control command with a line break")
	}
	if err := c.conn.SetDeadline(time.Now().Add(controlTimeout)); err != nil {
		return nil, err
	}
	if _, err := c.conn.Write([]byte(cmd + "\r\n")); err != nil {
		return nil, err
	}
	var lines []string
	for {
		l, err := c.line()
		if err != nil {
			return nil, err
		}
		if len(l) < 4 {
			return nil, fmt.Errorf("bad control reply line %q", l)
		}
		code, sep, text := l[:3], l[3], l[4:]
		if code != "250" {
			return nil, fmt.Errorf("tor answered %q with %q", firstWord(cmd), l)
		}
		if sep == '+' {
			var data []string
			for {
				d, err := c.line()
				if err != nil {
					return nil, err
				}
				if d == "." {
					break
				}
				data = append(data, strings.TrimPrefix(d, "."))
			}
			text += "\n" + strings.Join(data, "\n")
		}
		lines = append(lines, text)
		if sep == ' ' {
			return lines, nil
		}
	}
}

// line reads one line of the reply, without its CRLF.
func (c *control) line() (string, error) {
	l, err := c.r.ReadString('\n')
	return strings.TrimRight(l, "\r\n"), err
}

func (c *control) close() error { return c.conn.Close() }

func firstWord(s string) string {
	w, _, _ := strings.Cut(s, " ")
	return w
}
