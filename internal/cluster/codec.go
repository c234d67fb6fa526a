package cluster

import (
	"encoding/binary"
	"errors"

	"github.com/onionchat/onionchat/hub"
)

// The links between instances carry small binary records: an event is
// its kind, a flags byte, the sender's event counter, seq, commit, then
// room, session id, name, token, to, body and info, each a uvarint length
// and its bytes. Nothing here is JSON: a broadcast frame crosses once per
// instance and the encoding costs one allocation. The records have no
// version: the instances of a cluster run the same onionchat.

const (
	flagAway = 1
	flagOver = 2
)

var errShort = errors.New("cluster: short record")

func appendBytes(b []byte, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendEvent encodes e with the sender's event counter n.
func appendEvent(b []byte, e *hub.Event, n uint64) []byte {
	var flags byte
	if e.Away {
		flags |= flagAway
	}
	if e.Over {
		flags |= flagOver
	}
	b = append(b, byte(e.Kind), flags)
	b = binary.AppendUvarint(b, n)
	b = binary.AppendVarint(b, e.Seq)
	b = binary.AppendVarint(b, e.Commit)
	b = appendString(b, e.Room)
	b = appendString(b, e.SID)
	b = appendString(b, e.Name)
	b = appendBytes(b, e.Token)
	b = appendString(b, e.To)
	b = appendBytes(b, e.Body)
	return appendBytes(b, e.Info)
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err, r.b = errShort, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err, r.b = errShort, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	l := r.uvarint()
	if l > uint64(len(r.b)) {
		r.err, r.b = errShort, nil
		return nil
	}
	v := r.b[:l:l]
	r.b = r.b[l:]
	return v
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.err = errShort
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// readEvent decodes one event and its counter; Body and Token point into
// the record.
func (r *reader) event(e *hub.Event) (n uint64) {
	e.Kind = hub.EventKind(r.byte())
	flags := r.byte()
	e.Away, e.Over = flags&flagAway != 0, flags&flagOver != 0
	n = r.uvarint()
	e.Seq = r.varint()
	e.Commit = r.varint()
	e.Room = string(r.bytes())
	e.SID = string(r.bytes())
	e.Name = string(r.bytes())
	if t := r.bytes(); len(t) > 0 {
		e.Token = t
	}
	e.To = string(r.bytes())
	e.Body = r.bytes()
	if i := r.bytes(); len(i) > 0 {
		e.Info = i
	}
	return n
}

func decodeEvent(b []byte, e *hub.Event) (uint64, error) {
	r := reader{b: b}
	n := r.event(e)
	if r.err == nil && len(r.b) != 0 {
		r.err = errors.New("cluster: trailing bytes")
	}
	return n, r.err
}

// A snapshot is an instance's event counter and its sessions (Members).
func appendSnapshot(b []byte, n uint64, members []hub.Event) []byte {
	b = binary.AppendUvarint(b, n)
	b = binary.AppendUvarint(b, uint64(len(members)))
	for i := range members {
		b = appendEvent(b, &members[i], 0)
	}
	return b
}

func decodeSnapshot(b []byte) (uint64, []hub.Event, error) {
	r := reader{b: b}
	n := r.uvarint()
	k := r.uvarint()
	if k > uint64(len(b)) {
		return 0, nil, errShort
	}
	out := make([]hub.Event, k)
	for i := range out {
		r.event(&out[i])
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errors.New("cluster: trailing bytes")
	}
	return n, out, r.err
}

// A claim is its room, name keys, token and proof, then for a commit's claim its
// epoch plus one, the commit it goes over and the sender's session id.
func appendClaim(b []byte, c *hub.Claim) []byte {
	b = appendString(b, c.Room)
	b = appendString(b, c.Key)
	b = appendString(b, c.Skel)
	b = appendString(b, c.SkelLower)
	b = appendBytes(b, c.Token)
	b = appendBytes(b, c.Proof)
	b = binary.AppendVarint(b, c.Commit)
	b = appendString(b, c.OverInst)
	b = binary.AppendVarint(b, c.OverSeq)
	return appendString(b, c.SID)
}

func decodeClaim(b []byte) (hub.Claim, error) {
	r := reader{b: b}
	c := hub.Claim{Room: string(r.bytes()), Key: string(r.bytes()), Skel: string(r.bytes()), SkelLower: string(r.bytes())}
	if t := r.bytes(); len(t) > 0 {
		c.Token = t
	}
	if p := r.bytes(); len(p) > 0 {
		c.Proof = p
	}
	c.Commit = r.varint()
	c.OverInst = string(r.bytes())
	c.OverSeq = r.varint()
	c.SID = string(r.bytes())
	if r.err == nil && len(r.b) != 0 {
		r.err = errors.New("cluster: trailing bytes")
	}
	return c, r.err
}
