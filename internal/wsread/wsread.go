// Package wsread reads whole WebSocket messages into buffers the caller
// reuses, so that a connection that reads many small messages allocates
// nothing per message. The server's readers (web) and the load
// generator's clients (internal/bench) share it.
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
