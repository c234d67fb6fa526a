package hub

import (
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// version is the relay protocol version this hub speaks (docs/protocol.md
// §1–7): every frame carries it as "v".
const version = 2

// Frame types a client may send.
const (
	typeJoin   = "join"
	typeMsg    = "msg"
	typePing   = "ping"
	typeCommit = "commit" // a handshake frame for the room's group, ordered by the hub (§3.1)
	typeInfo   = "info"   // the room's sealed GroupInfo: offered, or asked for (§3.1)
)

// Error codes carried in error frames. docs/protocol.md §6 lists each with
// the condition that raises it and whether the connection stays open.
const (
	codeBadFrame       = "bad_frame"       // not a JSON object of known fields
	codeBadVersion     = "bad_version"     // "v" is missing or not this version
	codeUnknownType    = "unknown_type"    // "type" is not join, msg, commit, info or ping
	codeBadName        = "bad_name"        // the name breaks a rule of prepareName
	codeBadRoom        = "bad_room"        // room is not a room id (roomIDLen characters of base64url)
	CodeNameTaken      = "name_taken"      // a session in the room (live or away) has the name
	codeNameConfusable = "name_confusable" // the name looks like that of a session in the room
	CodeJoinRate       = "join_rate"       // joins from this peer over Config.JoinRate
	codeRoomFull       = "room_full"       // the room has MaxMembers members
	codeTooManyRooms   = "too_many_rooms"  // MaxRooms rooms exist and none could be taken
	codeAlreadyJoined  = "already_joined"  // one join per connection
	codeNotJoined      = "not_joined"      // msg, commit or info before join
	codeBadBody        = "bad_body"        // body missing or not base64
	codeNoSuchMember   = "no_such_member"  // "to" names nobody else in the room
	codeRateLimited    = "rate_limited"    // frames dropped: over the rate
	codeServerFull     = "server_full"     // MaxConns reached, nobody to evict; close 1013 follows
	codeEvicted        = "evicted"         // the place was given to someone in a shared room; close 1013 follows
	codeTooManyConns   = "too_many_conns"  // MaxConnsPerPeer reached; close 1008 follows
	codeJoinTimeout    = "join_timeout"    // no join within JoinTimeout; close 1008 follows
	codeShuttingDown   = "shutting_down"   // the server is stopping; close 1001 follows
	codeReplaced       = "replaced"        // a resumed session took this one's place; close 4000 follows
	codeBadEncoding    = "bad_encoding"    // text frame not valid UTF-8; close 1007 follows
	CodeBinaryRejected = "binary_rejected" // binary frames are not part of the protocol
	codeCommitConflict = "commit_conflict" // another commit was taken for that epoch first
)

// Close codes the hub asks its transport to send (RFC 6455 section 7.4 and
// the private range for onionchat's own).
const (
	closeNormal        = 1000
	closeGoingAway     = 1001 // server shutting down
	CloseUnsupported   = 1003 // binary frame
	closeBadData       = 1007 // invalid UTF-8
	closePolicy        = 1008 // flood, join timeout, too many connections from one peer
	closeTryAgainLater = 1013 // server full, or evicted to make room
	closeReplaced      = 4000 // a resumed session replaced this one
	// closeReconnecting comes from the client: a page giving up on a link
	// it thinks dead. Its session goes away rather than leaving.
	closeReconnecting = 4001

	closeNoStatus = 1005 // what a transport reports for a close frame without a code
)

// Limits that are part of the protocol rather than configuration.
const (
	maxNameRunes   = 32 // a member name, after preparation
	roomIDLen      = 22 // a room id: 16 bytes in unpadded base64url
	maxResumeBytes = 64 // a resume token
	maxID          = 1<<53 - 1
)

// oldVersionMsg is what a frame of another version is told.
const oldVersionMsg = "this page is an older version of onionchat: reload the page"

// clientFrame is one decoded client frame. Body points into the decoded
// input where it needed no unescaping, so it must not be kept past the
// buffer given to decodeClientFrame.
type clientFrame struct {
	V      int    // relay protocol version: the hub speaks version only
	Type   string // one of the type constants, or what the client sent
	Room   string // join: room id
	Name   string // join: member name
	Resume string // join: token from an earlier welcome, optional
	Since  int64  // join: the highest seq the client has, optional (0)
	Body   []byte // msg: base64 ciphertext
	To     string // msg: a single recipient, optional
	Bulk   bool   // msg: bulk data (a file's chunk): relayed to all, not kept, no seq
	ID     int64  // join, msg, commit, ping: client's reference echoed in errors, sent and pongs; 0 if absent

	Epoch    int64  // commit: the epoch of the group the commit was made in
	HasEpoch bool   // commit: "epoch" was given
	Info     []byte // commit, info: the room's sealed GroupInfo (base64), as the commit leaves it
	Over     int64  // commit: the seq of the commit taken for the epoch, which the sender found invalid; 0 if absent
}

// A frameError is a client frame the hub refuses, with the protocol error
// code to report.
type frameError struct {
	Code string
	Msg  string
}

func (e *frameError) Error() string { return e.Code + ": " + e.Msg }

func badFrame(msg string) error { return &frameError{Code: codeBadFrame, Msg: msg} }

var errEnd = errors.New("unexpected end of frame")

// decodeClientFrame parses a client frame: a single JSON object whose keys
// are among v, type, room, name, resume, since, body, to, bulk, id,
// epoch, info and over, each at most once, strings for the text fields, a
// boolean for bulk and integers for v, since, id, epoch and over. Anything else is a *frameError with code bad_frame (bad_encoding
// for invalid UTF-8, bad_version without "v"). It validates JSON structure
// only; the meaning of each field is checked by the hub.
func decodeClientFrame(b []byte) (clientFrame, error) {
	var f clientFrame
	if !utf8.Valid(b) {
		return f, &frameError{Code: codeBadEncoding, Msg: "frame is not valid UTF-8"}
	}
	d := decoder{b: b}
	d.ws()
	if !d.eat('{') {
		return f, badFrame("frame is not a JSON object")
	}
	var seen uint16
	d.ws()
	if d.eat('}') {
		return f, badFrame("frame has no type")
	}
	for {
		d.ws()
		kb, err := d.str()
		if err != nil {
			return f, badFrame("bad key: " + err.Error())
		}
		d.ws()
		if !d.eat(':') {
			return f, badFrame("expected ':' after a key")
		}
		d.ws()
		idx, ok := fieldIndex[string(kb)]
		if !ok {
			return f, badFrame("unknown field " + strconv.Quote(truncate(string(kb), 32)))
		}
		key, bit := fieldNames[idx], uint16(1)<<idx
		if seen&bit != 0 {
			return f, badFrame("field " + strconv.Quote(key) + " given twice")
		}
		seen |= bit
		switch key {
		case "bulk":
			v, err := d.boolean()
			if err != nil {
				return f, badFrame(`field "bulk": ` + err.Error())
			}
			f.Bulk = v
		case "v", "id", "since", "epoch", "over":
			n, err := d.int()
			if err != nil {
				return f, badFrame("field " + strconv.Quote(key) + ": " + err.Error())
			}
			switch key {
			case "v":
				f.V = int(min(n, 1<<20))
			case "id", "over":
				if n < 1 || n > maxID {
					return f, badFrame("field " + strconv.Quote(key) + " must be an integer from 1 to 2^53-1")
				}
				if key == "id" {
					f.ID = n
				} else {
					f.Over = n
				}
			default:
				if n > maxID {
					return f, badFrame("field " + strconv.Quote(key) + " must be an integer from 0 to 2^53-1")
				}
				if key == "since" {
					f.Since = n
				} else {
					f.Epoch, f.HasEpoch = n, true
				}
			}
		default:
			s, err := d.str()
			if err != nil {
				return f, badFrame("field " + strconv.Quote(key) + ": " + err.Error())
			}
			switch key {
			case "type":
				switch string(s) {
				case typeMsg:
					f.Type = typeMsg
				case typeJoin:
					f.Type = typeJoin
				case typePing:
					f.Type = typePing
				case typeCommit:
					f.Type = typeCommit
				case typeInfo:
					f.Type = typeInfo
				default:
					f.Type = truncate(string(s), 32)
				}
			case "room":
				f.Room = string(s)
			case "name":
				f.Name = string(s)
			case "resume":
				f.Resume = string(s)
			case "body":
				f.Body = s
			case "to":
				f.To = string(s)
			case "info":
				f.Info = s
			}
		}
		d.ws()
		if d.eat(',') {
			continue
		}
		if d.eat('}') {
			break
		}
		return f, badFrame("expected ',' or '}' after a value")
	}
	d.ws()
	if d.i != len(d.b) {
		return f, badFrame("data after the JSON object")
	}
	if seen&1 == 0 {
		return f, &frameError{Code: codeBadVersion, Msg: oldVersionMsg}
	}
	if seen&2 == 0 {
		return f, badFrame("frame has no type")
	}
	return f, nil
}

// fieldNames lists the keys a client frame may have; a key's index is its
// bit in the decoder's seen set ("v" is bit 0, "type" bit 1).
var fieldNames = [...]string{"v", "type", "room", "name", "resume", "since", "body", "to", "id", "bulk", "epoch", "info", "over"}

var fieldIndex = func() map[string]uint8 {
	m := make(map[string]uint8, len(fieldNames))
	for i, n := range fieldNames {
		m[n] = uint8(i)
	}
	return m
}()

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

type decoder struct {
	b []byte
	i int
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) eat(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// boolean parses a JSON true or false.
func (d *decoder) boolean() (bool, error) {
	for _, lit := range [...]string{"true", "false"} {
		if len(d.b)-d.i >= len(lit) && string(d.b[d.i:d.i+len(lit)]) == lit {
			d.i += len(lit)
			return lit == "true", nil
		}
	}
	return false, errors.New("must be true or false")
}

// int parses a JSON integer (no fraction, no exponent) of at most 16 digits.
func (d *decoder) int() (int64, error) {
	start := d.i
	neg := d.eat('-')
	digits := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	n := d.i - digits
	if n == 0 {
		if d.i < len(d.b) && (d.b[d.i] == '"' || d.b[d.i] == 't' || d.b[d.i] == 'f' || d.b[d.i] == 'n' || d.b[d.i] == '[' || d.b[d.i] == '{') {
			return 0, errors.New("must be an integer")
		}
		return 0, errors.New("bad number")
	}
	if n > 1 && d.b[digits] == '0' {
		return 0, errors.New("bad number: leading zero")
	}
	if d.i < len(d.b) && (d.b[d.i] == '.' || d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		return 0, errors.New("must be an integer")
	}
	if n > 16 {
		return 0, errors.New("number too large")
	}
	v, err := strconv.ParseInt(string(d.b[start:d.i]), 10, 64)
	if err != nil {
		return 0, errors.New("bad number")
	}
	if neg {
		return v, errors.New("must not be negative")
	}
	return v, nil
}

// str parses a JSON string. Without escapes it returns a slice of the
// input; with escapes it builds a new one.
func (d *decoder) str() ([]byte, error) {
	if d.i >= len(d.b) {
		return nil, errEnd
	}
	if d.b[d.i] != '"' {
		return nil, errors.New("must be a string")
	}
	d.i++
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			s := d.b[start:d.i:d.i]
			d.i++
			return s, nil
		case c == '\\':
			return d.strEscaped(start)
		case c < 0x20:
			return nil, errors.New("control character in string")
		}
		d.i++
	}
	return nil, errEnd
}

func (d *decoder) strEscaped(start int) ([]byte, error) {
	out := make([]byte, 0, d.i-start+16)
	out = append(out, d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return out, nil
		case c < 0x20:
			return nil, errors.New("control character in string")
		case c != '\\':
			out = append(out, c)
			d.i++
			continue
		}
		d.i++
		if d.i >= len(d.b) {
			return nil, errEnd
		}
		e := d.b[d.i]
		d.i++
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return nil, errors.New(`bad \u escape`)
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(utf8.RuneError)
				if d.i+1 < len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
					save := d.i
					d.i += 2
					if lo, ok := d.hex4(); ok {
						r2 = utf16.DecodeRune(r, lo)
					}
					if r2 == utf8.RuneError {
						d.i = save
					}
				}
				if r2 == utf8.RuneError {
					return nil, errors.New("unpaired surrogate in string")
				}
				r = r2
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, errors.New("bad escape in string")
		}
	}
	return nil, errEnd
}

func (d *decoder) hex4() (rune, bool) {
	if d.i+4 > len(d.b) {
		return 0, false
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.i += 4
	return r, true
}

// validBase64 reports whether s is standard base64 (RFC 4648 section 4)
// with padding, which is what the browser's btoa produces.
func validBase64(s []byte) bool {
	if len(s)%4 != 0 {
		return false
	}
	n := len(s)
	if n >= 1 && s[n-1] == '=' {
		n--
		if n >= 1 && s[n-1] == '=' {
			n--
		}
	}
	for i := 0; i < n; i++ {
		if !b64[s[i]] {
			return false
		}
	}
	return true
}

var b64 = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") {
		t[c] = true
	}
	return t
}()

// appendString appends s as a JSON string. Invalid UTF-8 cannot reach it:
// names, rooms and bodies are validated before they are echoed.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigit[c>>4], hexDigit[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

const hexDigit = "0123456789abcdef"
