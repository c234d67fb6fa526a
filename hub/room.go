package hub

import (
	"crypto/subtle"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// room is a set of members under unique names. It exists from its first
// join until its last member leaves; h.mu guards its place in h.rooms and
// r.mu its contents.
type room struct {
	name    string
	members []*Session          // in order of joining
	byName  map[string]*Session // by folded name

	hist     []histEntry // ring of kept messages, oldest at histHead
	histHead int
	histLen  int
	histSize int // bytes in hist

	mu sync.Mutex
}

type histEntry struct {
	body []byte
	at   int64 // hub time
}

func (r *room) remove(s *Session) {
	delete(r.byName, s.key)
	if i := slices.Index(r.members, s); i >= 0 {
		r.members = slices.Delete(r.members, i, i+1)
	}
	if len(r.members) < cap(r.members)/4 {
		r.members = slices.Clip(slices.Clone(r.members))
	}
}

// wipe forgets the room's backlog.
func (r *room) wipe() {
	clear(r.hist)
	r.hist, r.histHead, r.histLen, r.histSize = nil, 0, 0, 0
}

// keep adds a message body to the backlog, dropping the oldest entries to
// stay within max messages and MaxHistoryBytes.
func (r *room) keep(body []byte, at int64, max int) {
	if max <= 0 || len(body) > MaxHistoryBytes {
		return
	}
	if r.hist == nil {
		r.hist = make([]histEntry, max)
	}
	for r.histLen > 0 && (r.histLen == max || r.histSize+len(body) > MaxHistoryBytes) {
		r.dropOldest()
	}
	i := (r.histHead + r.histLen) % len(r.hist)
	r.hist[i] = histEntry{body: body, at: at}
	r.histLen++
	r.histSize += len(body)
}

func (r *room) dropOldest() {
	r.histSize -= len(r.hist[r.histHead].body)
	r.hist[r.histHead] = histEntry{}
	r.histHead = (r.histHead + 1) % len(r.hist)
	r.histLen--
}

// expire drops kept messages older than ttl.
func (r *room) expire(now, ttl int64) {
	for r.histLen > 0 && now-r.hist[r.histHead].at > ttl {
		r.dropOldest()
	}
}

// CleanName returns a member or room name as the hub stores it: trimmed of
// surrounding white space, valid UTF-8, 1 to maxRunes printable characters
// (letters, marks, numbers, punctuation, symbols and the ASCII space).
func CleanName(s string, maxRunes int) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxRunes {
		return "", false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return "", false
		}
	}
	return s, true
}

// foldName is the key under which names are unique in a room: "Alice" and
// "alice" are the same member.
func foldName(s string) string { return strings.ToLower(s) }

func sameToken(a, b string) bool {
	return a != "" && len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
