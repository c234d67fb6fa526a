// Package wsread reads whole WebSocket messages into buffers the caller
// reuses, so that a connection that reads many small messages allocates
// nothing per message. The server's readers (web) and the load
// generator's clients (internal/testing/bench) share it. Its Meter finds the
// frames of a WebSocket stream as they pass, for the server to count
// those (continuation frames) that its WebSocket library reads unseen.
package wsread

import (
	"errors"
	"io"
)

// Append reads r to its end and appends what it read to b, growing b as
// needed, as io.ReadAll does but into the caller's buffer. It returns b
// and the first error other than io.EOF.
func Append(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// A Meter finds the WebSocket frames in a byte stream as it passes, one
// Scan at a time, whatever the boundaries of the pieces: it reads each
// frame's header (RFC 6455 section 5.2) and skips its payload, so that
// it costs a few operations per frame and nothing per payload byte. It
// checks nothing; the WebSocket reader behind it does. The zero Meter
// expects the start of a frame.
type Meter struct {
	hdr  [14]byte
	n    int    // header bytes held
	need int    // header bytes needed: 2 until the second byte says more
	skip uint64 // payload bytes still to pass
}

// Scan passes p and calls frame with the opcode, FIN bit and payload
// length of every frame whose header ends in p, in order. It stops at
// frame's first error and returns it.
func (m *Meter) Scan(p []byte, frame func(op byte, fin bool, size uint64) error) error {
	for len(p) > 0 {
		if m.skip > 0 {
			k := min(uint64(len(p)), m.skip)
			m.skip -= k
			p = p[k:]
			continue
		}
		if m.need == 0 {
			m.need = 2
		}
		k := copy(m.hdr[m.n:m.need], p)
		m.n += k
		p = p[k:]
		if m.n < m.need {
			return nil
		}
		if m.n == 2 {
			switch m.hdr[1] & 0x7f {
			case 126:
				m.need += 2
			case 127:
				m.need += 8
			}
			if m.hdr[1]&0x80 != 0 {
				m.need += 4
			}
			if m.n < m.need {
				continue
			}
		}
		var size uint64
		switch l := m.hdr[1] & 0x7f; l {
		case 126:
			size = uint64(m.hdr[2])<<8 | uint64(m.hdr[3])
		case 127:
			for _, b := range m.hdr[2:10] {
				size = size<<8 | uint64(b)
			}
		default:
			size = uint64(l)
		}
		op, fin := m.hdr[0]&0x0f, m.hdr[0]&0x80 != 0
		m.n, m.need, m.skip = 0, 0, size
		if err := frame(op, fin, size); err != nil {
			return err
		}
	}
	return nil
}
