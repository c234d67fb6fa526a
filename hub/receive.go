package hub

import (
	"errors"
	"strconv"
	"sync"
	"time"
)

// Receive handles one text frame from the client. The hub does not keep p
// after Receive returns.
func (s *Session) Receive(p []byte) {
	h := s.h
	now := h.now()
	s.lastRead.Store(now)
	if s.closing.Load() {
		return // closed by the hub: what the client still sends goes nowhere
	}
	if !s.allow(now) {
		return
	}
	f, err := DecodeClientFrame(p)
	if err != nil {
		var fe *FrameError
		if errors.As(err, &fe) && fe.Code == CodeBadEncoding {
			s.fail(CloseBadData, fe.Code, fe.Msg, 0)
			return
		}
		if errors.As(err, &fe) {
			s.sendError(fe.Code, fe.Msg, 0)
		}
		return
	}
	if f.V != Version {
		s.sendError(CodeBadVersion, "this server speaks protocol version "+strconv.Itoa(Version)+"; reload the page", f.ID)
		return
	}
	switch f.Type {
	case TypeMsg:
		s.message(&f, now)
	case TypeJoin:
		s.join(&f, now)
	case TypePing:
		s.push(h.pongFrame(f.ID))
	default:
		s.sendError(CodeUnknownType, "unknown frame type "+strconv.Quote(f.Type), f.ID)
	}
}

// allow spends a token from the session's bucket. Over the rate, frames are
// dropped with a rate_limited error (at most one a second), and a client
// that goes on flooding is closed.
func (s *Session) allow(now int64) bool {
	c := &s.h.cfg
	if s.tokenAt == 0 {
		s.tokens = float64(c.Burst)
	} else {
		s.tokens = min(float64(c.Burst), s.tokens+float64(now-s.tokenAt)*c.Rate/1e9)
	}
	s.tokenAt = now
	if s.tokens >= 1 {
		s.tokens--
		s.dropped = 0
		return true
	}
	s.dropped++
	s.h.rateDropped.Add(1)
	if s.dropped > floodFactor*c.Burst {
		s.fail(ClosePolicy, CodeRateLimited, "too many frames; closing the connection", 0)
		return false
	}
	if s.warned == 0 || now-s.warned >= int64(time.Second) {
		s.warned = now
		wait := time.Duration((1 - s.tokens) / c.Rate * 1e9)
		s.sendError(CodeRateLimited, "too many frames: dropped; wait "+wait.Round(time.Millisecond).String(), 0)
	}
	return false
}

func (s *Session) sendError(code, msg string, ref int64) {
	s.push(s.h.errorFrame(code, msg, ref))
}

func (s *Session) join(f *ClientFrame, now int64) {
	h := s.h
	if s.room != nil {
		s.sendError(CodeAlreadyJoined, "this connection has joined a room already", f.ID)
		return
	}
	roomName, ok := CleanName(f.Room, MaxRoomRunes)
	if !ok {
		s.sendError(CodeBadRoom, "a room name has 1 to "+strconv.Itoa(MaxRoomRunes)+" printable characters", f.ID)
		return
	}
	name, ok := CleanName(f.Name, MaxNameRunes)
	if !ok {
		s.sendError(CodeBadName, "a name has 1 to "+strconv.Itoa(MaxNameRunes)+" printable characters", f.ID)
		return
	}
	if len(f.Resume) > MaxResumeBytes {
		s.sendError(CodeBadFrame, "resume token too long", f.ID)
		return
	}
	key := foldName(name)

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	r := h.rooms[roomName]
	if r == nil {
		if len(h.rooms) >= h.cfg.MaxRooms {
			s.sendError(CodeTooManyRooms, "the server has "+strconv.Itoa(h.cfg.MaxRooms)+" rooms; join an existing one or try later", f.ID)
			return
		}
		r = &room{name: roomName, byName: make(map[string]*Session)}
		h.rooms[roomName] = r
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.byName[key]
	if old != nil && !sameToken(f.Resume, old.resume) {
		s.sendError(CodeNameTaken, "someone in this room uses that name", f.ID)
		return
	}
	if old == nil && len(r.members) >= h.cfg.MaxMembers {
		s.sendError(CodeRoomFull, "the room has "+strconv.Itoa(h.cfg.MaxMembers)+" members", f.ID)
		return
	}
	if old != nil {
		// The same browser session, reconnected before its old connection
		// timed out: the new connection takes the old one's place.
		r.remove(old)
		old.fail(CloseReplaced, CodeReplaced, "this session continues on a newer connection", 0)
	}
	s.room, s.name, s.key, s.resume = r, name, key, newToken()
	r.members = append(r.members, s)
	r.byName[key] = s
	s.joined.Store(true)

	r.expire(now, int64(h.cfg.HistoryTTL))
	s.push(h.welcomeFrame(s, r, now))
	if r.histLen > 0 {
		for i := range r.histLen {
			e := r.hist[(r.histHead+i)%len(r.hist)]
			s.push(h.historyFrame(e.body, now-e.at))
		}
	}
	ev := h.eventFrame("join", name, old != nil)
	for _, m := range r.members {
		if m != s {
			m.push(ev)
		}
	}
}

func (s *Session) message(f *ClientFrame, now int64) {
	h := s.h
	r := s.room
	if r == nil {
		s.sendError(CodeNotJoined, "join a room first", f.ID)
		return
	}
	if len(f.Body) == 0 || !validBase64(f.Body) {
		s.sendError(CodeBadBody, "body must be standard base64 with padding", f.ID)
		return
	}
	if f.To != "" {
		r.mu.Lock()
		m := r.byName[foldName(f.To)]
		mine := r.byName[s.key] == s
		r.mu.Unlock()
		switch {
		case !mine: // replaced or leaving: its frames go nowhere
		case m == nil || m == s:
			s.sendError(CodeNoSuchMember, "nobody of that name is in the room", f.ID)
		default:
			m.push(h.msgFrame(s.name, f.Body, m.name))
		}
		return
	}
	frame := h.msgFrame(s.name, f.Body, "")
	r.mu.Lock()
	if r.byName[s.key] != s {
		r.mu.Unlock() // replaced or leaving: its frames go nowhere
		return
	}
	for _, m := range r.members {
		if m != s {
			m.push(frame)
		}
	}
	if h.cfg.HistoryMessages > 0 {
		r.expire(now, int64(h.cfg.HistoryTTL))
		r.keep(append([]byte(nil), f.Body...), now, h.cfg.HistoryMessages)
	}
	r.mu.Unlock()
}

// Frame encoding. Each builder renders the payload into a pooled scratch
// buffer and returns the Wire's encoding of it, shared by every receiver.

var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func (h *Hub) build(fill func(b []byte) []byte) []byte {
	bp := scratchPool.Get().(*[]byte)
	b := fill((*bp)[:0])
	out := h.cfg.Wire.Text(b)
	if cap(b) <= 128<<10 {
		*bp = b[:0]
		scratchPool.Put(bp)
	}
	return out
}

func appendHead(b []byte, typ string) []byte {
	b = append(b, `{"v":1,"type":"`...)
	b = append(b, typ...)
	return append(b, '"')
}

func (h *Hub) msgFrame(from string, body []byte, to string) []byte {
	return h.build(func(b []byte) []byte {
		b = appendHead(b, TypeMsg)
		b = append(b, `,"from":`...)
		b = appendString(b, from)
		if to != "" {
			b = append(b, `,"to":`...)
			b = appendString(b, to)
		}
		b = append(b, `,"body":"`...)
		b = append(b, body...) // validated base64: nothing to escape
		return append(b, `"}`...)
	})
}

func (h *Hub) historyFrame(body []byte, age int64) []byte {
	return h.build(func(b []byte) []byte {
		b = appendHead(b, TypeMsg)
		b = append(b, `,"history":true,"age":`...)
		b = strconv.AppendInt(b, age/int64(time.Second), 10)
		b = append(b, `,"body":"`...)
		b = append(b, body...)
		return append(b, `"}`...)
	})
}

func (h *Hub) eventFrame(typ, name string, resumed bool) []byte {
	return h.build(func(b []byte) []byte {
		b = appendHead(b, typ)
		b = append(b, `,"name":`...)
		b = appendString(b, name)
		if resumed {
			b = append(b, `,"resumed":true`...)
		}
		return append(b, '}')
	})
}

func (h *Hub) welcomeFrame(s *Session, r *room, now int64) []byte {
	c := &h.cfg
	return h.build(func(b []byte) []byte {
		b = appendHead(b, "welcome")
		b = append(b, `,"room":`...)
		b = appendString(b, r.name)
		b = append(b, `,"you":`...)
		b = appendString(b, s.name)
		b = append(b, `,"resume":`...)
		b = appendString(b, s.resume)
		b = append(b, `,"server":`...)
		b = appendString(b, c.ServerID)
		b = append(b, `,"members":[`...)
		for i, m := range r.members {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, m.name)
		}
		b = append(b, `],"limits":{"frame":`...)
		b = strconv.AppendInt(b, int64(c.MaxFrameBytes), 10)
		b = append(b, `,"rate":`...)
		b = strconv.AppendFloat(b, c.Rate, 'g', -1, 64)
		b = append(b, `,"burst":`...)
		b = strconv.AppendInt(b, int64(c.Burst), 10)
		b = append(b, `,"members":`...)
		b = strconv.AppendInt(b, int64(c.MaxMembers), 10)
		b = append(b, `,"ping":`...)
		b = strconv.AppendInt(b, c.PingInterval.Milliseconds(), 10)
		b = append(b, `},"history":`...)
		b = strconv.AppendInt(b, int64(r.histLen), 10)
		return append(b, '}')
	})
}

func (h *Hub) pongFrame(id int64) []byte {
	if id == 0 {
		return h.build(func(b []byte) []byte { return append(appendHead(b, "pong"), '}') })
	}
	return h.build(func(b []byte) []byte {
		b = appendHead(b, "pong")
		b = append(b, `,"id":`...)
		b = strconv.AppendInt(b, id, 10)
		return append(b, '}')
	})
}

func (h *Hub) errorFrame(code, msg string, ref int64) []byte {
	return h.build(func(b []byte) []byte {
		b = appendHead(b, "error")
		b = append(b, `,"code":`...)
		b = appendString(b, code)
		b = append(b, `,"message":`...)
		b = appendString(b, msg)
		if ref != 0 {
			b = append(b, `,"ref":`...)
			b = strconv.AppendInt(b, ref, 10)
		}
		return append(b, '}')
	})
}
