package hub

import (
	"crypto/rand"
	"encoding/base64"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Session is one client connection, from Open until End. Its reader
// goroutine (the transport's) calls Receive and End; a writer goroutine,
// started when frames are queued and gone when the queue is empty, writes
// every queued frame in one Write.
type Session struct {
	h    *Hub
	conn Conn
	peer string

	// Owned by the reader goroutine.
	room    *room
	name    string // as the member chose it, trimmed
	key     string // name folded for uniqueness
	tokens  float64
	tokenAt int64
	dropped int   // frames dropped in the current flood
	warned  int64 // when the last rate_limited error was sent
	ended   bool  // guarded by h.mu
	counted bool  // set by Open under h.mu: counts toward conns and peers
	resume  string

	// Owned by the hub's sweeper.
	opened   int64
	lastPing int64

	lastRead   atomic.Int64 // hub time of the last frame or pong read
	writeStart atomic.Int64 // hub time the current Write began; 0 when none
	joined     atomic.Bool
	closing    atomic.Bool // set once the session will say nothing more

	mu      sync.Mutex
	q       [][]byte
	spare   [][]byte
	qbytes  int
	writing bool
	state   uint8
}

const (
	stateOpen    = iota
	stateClosing // final frames queued; the writer closes the transport after them
	stateDead    // transport closed
)

// Touch records that the client is alive (a pong or any other read).
func (s *Session) Touch() { s.lastRead.Store(s.h.now()) }

// push queues wire bytes for the client. A client whose queue is over the
// limits is dropped at once, so that nobody waits for it.
func (s *Session) push(b []byte) {
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		return
	}
	if len(s.q) >= s.h.cfg.SendQueue || s.qbytes+len(b) > s.h.cfg.SendQueueBytes {
		s.mu.Unlock()
		s.h.slowDropped.Add(1)
		s.abort()
		return
	}
	s.q = append(s.q, b)
	s.qbytes += len(b)
	start := !s.writing
	s.writing = true
	s.mu.Unlock()
	if start {
		go s.writeLoop()
	}
}

// fail sends an error frame (if code is not empty) and a close frame, then
// closes the transport. Frames queued before are sent first.
func (s *Session) fail(closeCode int, code, msg string, ref int64) {
	var e []byte
	if code != "" {
		e = s.h.errorFrame(code, msg, ref)
	}
	c := s.h.cfg.Wire.Close(closeCode, code)
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		return
	}
	s.state = stateClosing
	s.closing.Store(true)
	if e != nil {
		s.q = append(s.q, e)
	}
	s.q = append(s.q, c)
	start := !s.writing
	s.writing = true
	s.mu.Unlock()
	if start {
		go s.writeLoop()
	}
}

// abort closes the transport at once, dropping whatever is queued. The
// transport's Close may run more than once (its contract).
func (s *Session) abort() {
	s.closing.Store(true)
	s.mu.Lock()
	s.state = stateDead
	clear(s.q)
	s.q = s.q[:0]
	s.qbytes = 0
	s.mu.Unlock()
	s.conn.Close()
}

// Fail closes the session with a close code and a protocol error code, for
// transport-level faults the hub cannot see (binary frames, say).
func (s *Session) Fail(closeCode int, code, msg string) { s.fail(closeCode, code, msg, 0) }

// flushAt is the batch size at which a writer writes before it has
// copied the whole queue: about 170 chat frames per write, enough for
// batching to pay, and small enough that hundreds of busy writers hold
// little memory at once. Pooled batch buffers larger than maxPooled are
// dropped.
const (
	flushAt   = 32 << 10
	maxPooled = 64 << 10
)

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 2<<10); return &b }}

func (s *Session) writeLoop() {
	bp := batchPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooled {
			batchPool.Put(bp)
		}
	}()
	idle := false
	for {
		s.mu.Lock()
		q := s.q
		if len(q) == 0 && !idle && s.state == stateOpen {
			// Before exiting, let the goroutines that feed this queue run
			// once: under load more frames come, and this writer saves
			// the next one being started.
			s.mu.Unlock()
			idle = true
			runtime.Gosched()
			continue
		}
		idle = false
		if len(q) == 0 || s.state == stateDead {
			s.writing = false
			closing := s.state == stateClosing
			if closing {
				s.state = stateDead
			}
			if cap(s.spare) > 64 {
				s.spare = nil
			}
			s.mu.Unlock()
			if closing {
				if gc, ok := s.conn.(GracefulCloser); ok {
					gc.CloseGracefully() // the reader ends the session
				} else {
					s.conn.Close()
				}
			}
			return
		}
		s.q, s.spare = s.spare[:0], nil
		s.qbytes = 0
		s.mu.Unlock()

		buf := (*bp)[:0]
		var err error
		for i, f := range q {
			buf = append(buf, f...)
			q[i] = nil
			if len(buf) >= flushAt || i == len(q)-1 {
				s.writeStart.Store(max(s.h.now(), 1))
				_, err = s.conn.Write(buf)
				s.writeStart.Store(0)
				buf = buf[:0]
				if err != nil {
					break
				}
			}
		}
		*bp = buf
		if err != nil {
			clear(q)
			s.abort()
			s.mu.Lock()
			s.writing = false
			s.mu.Unlock()
			return
		}
		s.mu.Lock()
		if s.spare == nil {
			s.spare = q[:0]
		}
		s.mu.Unlock()
	}
}

// End removes the session from its room and from the hub and closes the
// transport. The transport's reader calls it once, when it stops reading.
func (s *Session) End() {
	h := s.h
	h.mu.Lock()
	if s.ended {
		h.mu.Unlock()
		return
	}
	s.ended = true
	if s.counted {
		delete(h.sessions, s)
		if n := h.peers[s.peer] - 1; n > 0 {
			h.peers[s.peer] = n
		} else {
			delete(h.peers, s.peer)
		}
		if h.closed && len(h.sessions) == 0 {
			close(h.drained)
		}
	}
	if r := s.room; r != nil {
		r.mu.Lock()
		if r.byName[s.key] == s {
			r.remove(s)
			if len(r.members) == 0 {
				delete(h.rooms, r.name)
				r.wipe()
			} else {
				f := h.eventFrame("leave", s.name, false)
				for _, m := range r.members {
					m.push(f)
				}
			}
		}
		r.mu.Unlock()
	}
	h.mu.Unlock()

	// A session closing on purpose gets a moment to flush its last frames
	// (a close reply, say); anything else is cut off now.
	s.mu.Lock()
	closing := s.state == stateClosing && s.writing
	s.mu.Unlock()
	if closing {
		time.AfterFunc(min(h.cfg.WriteTimeout, endGrace), s.abort)
	} else {
		s.abort()
	}
}

// endGrace bounds how long an ended session's last frames may take.
const endGrace = 2 * time.Second

func newToken() string {
	var b [18]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Queue sends bytes already encoded for the wire (a pong, say) after the
// frames queued before them.
func (s *Session) Queue(b []byte) { s.push(b) }
