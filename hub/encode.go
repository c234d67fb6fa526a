package hub

import (
	"strconv"
	"sync"
)

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

// head opens every server frame.
var head = `{"v":` + strconv.Itoa(version) + `,"type":"`

func appendHead(b []byte, typ string) []byte {
	b = append(b, head...)
	b = append(b, typ...)
	return append(b, '"')
}

func appendInt(b []byte, key string, v int64) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

func appendStr(b []byte, key, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

// appendBody appends a validated base64 body: nothing to escape.
func appendBody(b, body []byte) []byte {
	b = append(b, `,"body":"`...)
	b = append(b, body...)
	return append(b, '"')
}

// appendLimits appends the limits object of server and welcome frames.
func appendLimits(b []byte, c *Config) []byte {
	b = append(b, `{"frame":`...)
	b = strconv.AppendInt(b, int64(c.MaxFrameBytes), 10)
	b = append(b, `,"rate":`...)
	b = strconv.AppendFloat(b, c.Rate, 'g', -1, 64)
	b = appendInt(b, "burst", int64(c.Burst))
	b = appendInt(b, "members", int64(c.MaxMembers))
	b = appendInt(b, "ping", c.PingInterval.Milliseconds())
	b = appendInt(b, "window", c.ResumeWindow.Milliseconds())
	b = appendInt(b, "bytes", int64(c.ByteRate))
	b = appendInt(b, "file", int64(c.MaxFileBytes))
	return append(b, '}')
}

func (h *Hub) buildServer() []byte {
	return h.build(func(b []byte) []byte {
		b = appendHead(b, "server")
		b = appendStr(b, "server", h.cfg.ServerID)
		b = append(b, `,"limits":`...)
		b = append(b, h.limits...)
		return append(b, '}')
	})
}

// msgFrame is a live broadcast frame; commit is a commit's epoch plus
// one (the hub took it for that epoch, §3.1), 0 for any other frame.
func (h *Hub) msgFrame(seq int64, from *member, body []byte, commit int64) []byte {
	return h.build(func(b []byte) []byte {
		b = appendHead(b, typeMsg)
		b = appendInt(b, "seq", seq)
		b = appendStr(b, "sid", from.sid)
		b = appendStr(b, "from", from.name)
		if commit > 0 {
			b = appendInt(b, "commit", commit-1)
		}
		b = appendBody(b, body)
		return append(b, '}')
	})
}

// infoFrame hands a room's sealed GroupInfo to a page.
func (h *Hub) infoFrame(info []byte) []byte {
	return h.build(func(b []byte) []byte {
		b = appendHead(b, typeInfo)
		b = appendBody(b, info)
		return append(b, '}')
	})
}

// conflictFrame refuses a commit: the hub took another for its epoch,
// whose seq it names.
func (h *Hub) conflictFrame(ref, epoch, seq int64) []byte {
	return h.build(func(b []byte) []byte {
		b = appendHead(b, "error")
		b = appendStr(b, "code", codeCommitConflict)
		b = appendStr(b, "message", "another commit was taken for this epoch first")
		b = appendInt(b, "ref", ref)
		b = appendInt(b, "epoch", epoch)
		b = appendInt(b, "seq", seq)
		return append(b, '}')
	})
}

// oldMsgFrame is a kept frame as catch-up sends it: named while its sender
// is in the room.
func (h *Hub) oldMsgFrame(e *kept, named bool) []byte {
	return h.build(func(b []byte) []byte {
		b = appendHead(b, typeMsg)
		b = appendInt(b, "seq", e.seq)
		b = appendStr(b, "sid", e.from.sid)
		if named {
			b = appendStr(b, "from", e.from.name)
		}
		if e.commit > 0 {
			b = appendInt(b, "commit", e.commit-1)
		}
		b = appendBody(b, e.body)
		return append(b, `,"old":true}`...)
	})
}

// bulkFrame is a broadcast of bulk data (a file's chunk): no seq, not
// kept.
func (h *Hub) bulkFrame(from *member, body []byte) []byte {
	return h.build(func(b []byte) []byte {
		b = appendHead(b, typeMsg)
		b = appendStr(b, "sid", from.sid)
		b = appendStr(b, "from", from.name)
		b = appendBody(b, body)
		return append(b, `,"bulk":true}`...)
	})
}

// directFrame is a msg to one member: no seq, not kept.
func (h *Hub) directFrame(from, to *member, body []byte) []byte {
	return h.build(func(b []byte) []byte {
		b = appendHead(b, typeMsg)
		b = appendStr(b, "sid", from.sid)
		b = appendStr(b, "from", from.name)
		b = appendStr(b, "to", to.name)
		b = appendBody(b, body)
		return append(b, '}')
	})
}

// eventFrame says that m joined, went away, came back or left.
func (h *Hub) eventFrame(typ string, m *member) []byte {
	return h.build(func(b []byte) []byte {
		b = appendHead(b, typ)
		b = appendStr(b, "name", m.name)
		b = appendStr(b, "sid", m.sid)
		return append(b, '}')
	})
}

// sentFrame tells a sender that its broadcast of that id was relayed
// with that seq, to members of the room (away ones and other instances'
// included): 0 means nobody else was there, and nothing was kept, so the
// page sends it again when members come back.
func (h *Hub) sentFrame(id, seq int64, to int) []byte {
	return h.build(func(b []byte) []byte {
		b = appendHead(b, "sent")
		b = appendInt(b, "id", id)
		b = appendInt(b, "seq", seq)
		b = appendInt(b, "to", int64(to))
		return append(b, '}')
	})
}

func (h *Hub) welcomeFrame(r *room, you *member, resumed bool, catchup, gap int64) []byte {
	return h.build(func(b []byte) []byte {
		b = appendHead(b, "welcome")
		b = appendStr(b, "room", r.id)
		b = appendStr(b, "you", you.name)
		b = appendStr(b, "sid", you.sid)
		b = appendStr(b, "resume", you.resume)
		b = appendStr(b, "server", h.cfg.ServerID)
		b = append(b, `,"members":[`...)
		for i, m := range r.members {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendString(b, m.name)
			b = appendStr(b, "sid", m.sid)
			if m.away {
				b = append(b, `,"away":true`...)
			}
			b = append(b, '}')
		}
		b = append(b, `],"limits":`...)
		b = append(b, h.limits...)
		b = appendInt(b, "seq", r.seq)
		if resumed {
			b = append(b, `,"resumed":true`...)
		}
		b = appendInt(b, "catchup", catchup)
		b = appendInt(b, "gap", gap)
		if r.info != nil {
			b = append(b, `,"info":"`...)
			b = append(b, r.info...)
			b = append(b, '"')
		}
		return append(b, '}')
	})
}

func (h *Hub) pongFrame(id int64) []byte {
	return h.build(func(b []byte) []byte {
		b = appendHead(b, "pong")
		if id != 0 {
			b = appendInt(b, "id", id)
		}
		return append(b, '}')
	})
}

func (h *Hub) errorFrame(code, msg string, ref int64) []byte {
	return h.build(func(b []byte) []byte {
		b = appendHead(b, "error")
		b = appendStr(b, "code", code)
		b = appendStr(b, "message", msg)
		if ref != 0 {
			b = appendInt(b, "ref", ref)
		}
		return append(b, '}')
	})
}
