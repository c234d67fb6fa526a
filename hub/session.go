package hub

import (
	"container/list"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Session is one client connection, from Open until End: the transport
// side of a session of docs/protocol.md. Once it joins, it carries a
// member (name, session id, place in the room), which can outlive it: a
// connection that drops leaves its member away, and a new connection can
// take the member back.
//
// Its reader goroutine (the transport's) calls Receive, Control,
// CloseFrame, ClientClosed and End; a writer goroutine, started when frames are queued
// and gone when the queue is empty, writes every queued frame in one
// Write.
type Session struct {
	h    *Hub
	conn Conn
	peer string

	// Owned by the reader goroutine.
	m          *member // set once, by a successful join
	tokens     float64
	tokenAt    int64
	byteTokens float64 // the byte bucket (Config.ByteRate), refilled with tokens
	dropped    int     // frames dropped since the buckets were last full
	warned     int64   // when the last rate_limited error was sent

	// Guarded by h.mu.
	ended   bool
	listed  bool          // in h.sessions and h.peers
	counted bool          // counts toward MaxConns
	over    bool          // admitted over MaxConns: its join takes an away session's place
	waiting *list.Element // in h.waiting until it joins

	// Owned by the hub's sweeper.
	opened   int64
	lastPing int64

	lastRead   atomic.Int64 // hub time of the last frame or pong read
	writeStart atomic.Int64 // hub time the current Write began; 0 when none
	joined     atomic.Bool
	closing    atomic.Bool // set once the session will say nothing more
	leaving    atomic.Bool // the connection ends on purpose: its member leaves rather than going away
	refused    atomic.Bool // Open refused it: its transport closes at once after its last frames

	mu      sync.Mutex
	q       [][]byte
	spare   [][]byte
	qn      int // frames in q that count toward SendQueue
	qbytes  int // bytes in q that count toward SendQueueBytes
	writing bool
	state   uint8
}

const (
	stateOpen    = iota
	stateClosing // final frames queued; the writer closes the transport after them
	stateDead    // transport closed
)

// Control counts a WebSocket frame from the client that the hub does not
// see (a ping, a pong, a continuation frame) against the connection's
// rate, as docs/protocol.md §5 says every frame counts. It reports whether the frame is within the rate: if not,
// the transport drops it (it does not answer the ping). A client that
// keeps sending over the rate is closed with 1008 (policy).
func (s *Session) Control() bool {
	now := s.h.now()
	s.lastRead.Store(now)
	if s.closing.Load() {
		return false
	}
	return s.allow(now, 0, false)
}

// ClientClosed records that the connection ends on purpose: the transport
// closed it for the client's fault (a frame over MaxFrameBytes, a binary
// frame). Its session then leaves the room at End, at once, rather than
// going away for the resume window. Call it before End. For a close frame
// from the client, call CloseFrame.
func (s *Session) ClientClosed() { s.leaving.Store(true) }

// CloseFrame handles a close frame from the client, with its status code
// (1005 when it had none): it answers with a close frame of the same code
// (1000 for 1005) and closes the connection. Then, at End, the session
// leaves the room, unless the code is 4001 (reconnecting): a page giving
// up on a link it thinks dead, whose session goes away for the resume window
// like a dropped one (docs/protocol.md §4).
func (s *Session) CloseFrame(code int) {
	if code != closeReconnecting {
		s.leaving.Store(true)
	}
	if code == closeNoStatus {
		code = closeNormal
	}
	s.close(code, "", "", 0)
}

// push queues wire bytes for the client. A client whose queue is over the
// limits is dropped at once, so that nobody waits for it.
func (s *Session) push(b []byte) {
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		return
	}
	if s.qn >= s.h.cfg.SendQueue || s.qbytes+len(b) > s.h.cfg.SendQueueBytes {
		s.mu.Unlock()
		s.h.slowDropped.Add(1)
		s.abort()
		return
	}
	s.q = append(s.q, b)
	s.qn++
	s.qbytes += len(b)
	s.start()
}

// pushOld queues a catch-up frame. Those are a room's kept frames, made
// once for every session that catches up and charged to the room's caps,
// so they do not count toward the connection's queue limits.
func (s *Session) pushOld(b []byte) {
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		return
	}
	s.q = append(s.q, b)
	s.start()
}

// start starts the writer unless it runs, and unlocks s.mu.
func (s *Session) start() {
	start := !s.writing
	s.writing = true
	s.mu.Unlock()
	if start {
		go s.writeLoop()
	}
}

// fail sends an error frame (if code is not empty) and a close frame, then
// closes the transport. Frames queued before are sent first. A connection
// the hub closes for a fault ends on purpose: its session leaves rather
// than going away.
func (s *Session) fail(closeCode int, code, msg string, ref int64) {
	s.leaving.Store(true)
	s.close(closeCode, code, msg, ref)
}

// close is fail without deciding whether the session leaves.
func (s *Session) close(closeCode int, code, msg string, ref int64) {
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
	s.start()
}

// abort closes the transport at once, dropping whatever is queued. The
// transport's Close may run more than once (its contract).
func (s *Session) abort() {
	s.closing.Store(true)
	s.mu.Lock()
	s.state = stateDead
	clear(s.q)
	s.q = s.q[:0]
	s.qn, s.qbytes = 0, 0
	s.mu.Unlock()
	s.conn.Close()
}

// Fail closes the session with a close code and a protocol error code (or
// none, if code is empty), for transport-level faults the hub cannot see
// (binary frames, say). Its session leaves the room at End. To answer a
// client's close frame, use CloseFrame.
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
				// A connection Open refused closes at once: it has sent
				// nothing the server read (a client waits for the
				// upgrade's answer), so its frames still arrive, and one
				// address opening thousands a second must not hold a
				// socket each for the lingering close.
				if gc, ok := s.conn.(GracefulCloser); ok && !s.refused.Load() {
					gc.CloseGracefully() // the reader ends the session
				} else {
					s.conn.Close()
				}
			}
			return
		}
		s.q, s.spare = s.spare[:0], nil
		s.qn, s.qbytes = 0, 0
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

// End ends the connection and closes the transport. The transport's
// reader calls it once, when it stops reading. A joined session whose
// connection ends without ClientClosed or a close by the hub goes away: it
// keeps its name and place for the resume window, and its room is told
// (docs/protocol.md §4). Otherwise it leaves the room.
func (s *Session) End() {
	h := s.h
	now := h.now()
	h.mu.Lock()
	if s.ended {
		h.mu.Unlock()
		return
	}
	s.ended = true
	if s.listed {
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
	h.uncount(s)
	if m := s.m; m != nil {
		r := m.room
		r.mu.Lock()
		if m.conn == s {
			if s.leaving.Load() || h.closed {
				h.removeMember(r, m)
			} else {
				m.conn = nil
				m.away, m.awaySince = true, now
				m.awayElem = h.away.PushBack(m)
				r.awayN++
				h.unquiet(m)
				h.counted++
				r.event(h, "away", m)
				h.others.tell(eventAway, r, m)
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

// Queue sends bytes already encoded for the wire (a pong, say) after the
// frames queued before them.
func (s *Session) Queue(b []byte) { s.push(b) }
