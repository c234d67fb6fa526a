package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/onionchat/onionchat/internal/wsread"
)

// A message body is an envelope of a short chat message: 150 bytes as
// version 3 envelopes were before padding (2 + 8 + 4 + 12 + about 60 of
// sealed text + 64 of signature), or 512 as the page pads it now (the
// smallest bucket). Its bytes:
//
//	[0:2] sender index  [2:6] sequence  [6:14] send time (ns since epoch)
//	[14:n-4] filler from (sender, sequence)  [n-4:n] CRC-32 of [0:n-4]
const (
	bodyBytes   = 150
	paddedBytes = 512   // the page pads every envelope to a bucket: 512, 1024, … 32768 bytes
	maxBody     = 32768 // the largest bucket
)

// frameSize is the size of a msg frame as the hub sends it, for a body of
// n bytes: {"v":2,"type":"msg","seq":…,"sid":…,"from":"c199","body":…}.
func frameSize(n int) int {
	return 2 + len(`{"v":2,"type":"msg","seq":1234567,"sid":"`) + 22 + len(`","from":"c199","body":""}`) + base64.StdEncoding.EncodedLen(n)
}

// epoch is the zero of send times; clients and checker share the process.
var epoch = time.Now()

func makeBody(sender, seq, n int, sent time.Duration) string {
	b := make([]byte, n)
	binary.BigEndian.PutUint16(b[0:], uint16(sender))
	binary.BigEndian.PutUint32(b[2:], uint32(seq))
	binary.BigEndian.PutUint64(b[6:], uint64(sent))
	fill(b[14:n-4], sender, seq)
	binary.BigEndian.PutUint32(b[n-4:], crc32.ChecksumIEEE(b[:n-4]))
	return base64.StdEncoding.EncodeToString(b)
}

func fill(b []byte, sender, seq int) {
	x := uint32(sender)*2654435761 ^ uint32(seq)*40503
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
}

// msgFrame is a short chat message's frame, unpadded.
func msgFrame(sender, seq int, sent time.Duration) []byte {
	return msgFrameN(sender, seq, bodyBytes, sent)
}

// msgFrameN is a msg frame with an n-byte body.
func msgFrameN(sender, seq, n int, sent time.Duration) []byte {
	return []byte(`{"v":2,"type":"msg","body":"` + makeBody(sender, seq, n, sent) + `"}`)
}

// roomID is the room id for a room called name, shaped like the id a page
// derives from its room secret (22 characters of base64url).
func roomID(name string) string {
	sum := sha256.Sum256([]byte(name))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// client is one bench connection.
type client struct {
	ws    *websocket.Conn
	index int
	wmu   sync.Mutex
}

// dialer's buffers suit a few hundred busy clients; smallDialer's suit
// thousands of mostly quiet ones.
var (
	dialer      = websocket.Dialer{HandshakeTimeout: 20 * time.Second, ReadBufferSize: 64 << 10, WriteBufferSize: 4 << 10}
	smallDialer = websocket.Dialer{HandshakeTimeout: 20 * time.Second, ReadBufferSize: 2 << 10, WriteBufferSize: 1 << 10}
)

// dial connects, reads the server frame and joins room as "c<index>",
// returning after the welcome.
func dial(ctx context.Context, url, room string, index int) (*client, error) {
	c, _, err := dialJoin(ctx, url, room, index, "", 0)
	return c, err
}

// dialJoin is dial that can take back a session: with resume (a token
// from an earlier welcome) and since (the highest seq received). It
// returns the welcome too.
func dialJoin(ctx context.Context, url, room string, index int, resume string, since int64) (*client, []byte, error) {
	d := &dialer
	if strings.HasPrefix(room, "soak") || strings.HasPrefix(room, "churn") || strings.HasPrefix(room, "idle") {
		d = &smallDialer
	}
	ws, _, err := d.DialContext(ctx, wsURL(url), http.Header{"Origin": {strings.TrimSuffix(url, "/")}})
	if err != nil {
		return nil, nil, err
	}
	c := &client{ws: ws, index: index}
	ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	defer ws.SetReadDeadline(time.Time{})
	if _, b, err := ws.ReadMessage(); err != nil || !bytes.Contains(b, []byte(`"type":"server"`)) {
		ws.Close()
		return nil, nil, fmt.Errorf("no server frame: %s %v", b, err)
	}
	join := `{"v":2,"type":"join","room":"` + roomID(room) + `","name":"c` + strconv.Itoa(index) + `"`
	if resume != "" {
		join += `,"resume":"` + resume + `","since":` + strconv.FormatInt(since, 10)
	}
	if err := c.send([]byte(join + "}")); err != nil {
		ws.Close()
		return nil, nil, err
	}
	_, b, err := ws.ReadMessage()
	if err != nil {
		ws.Close()
		return nil, nil, err
	}
	if !bytes.Contains(b, []byte(`"type":"welcome"`)) {
		ws.Close()
		return nil, nil, fmt.Errorf("join refused: %s", b)
	}
	return c, b, nil
}

// field returns the value of a top-level string or integer field of a
// server frame the hub encoded ("key":"value" or "key":123), or "".
func field(frame []byte, key string) string {
	k := []byte(`"` + key + `":`)
	i := bytes.Index(frame, k)
	if i < 0 {
		return ""
	}
	v := frame[i+len(k):]
	if len(v) > 0 && v[0] == '"' {
		if j := bytes.IndexByte(v[1:], '"'); j >= 0 {
			return string(v[1 : 1+j])
		}
		return ""
	}
	j := 0
	for j < len(v) && v[j] >= '0' && v[j] <= '9' {
		j++
	}
	return string(v[:j])
}

func wsURL(u string) string {
	u = strings.TrimSuffix(u, "/")
	u = strings.Replace(u, "https://", "wss://", 1)
	return strings.Replace(u, "http://", "ws://", 1) + "/ws"
}

func (c *client) send(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// checker verifies what one client receives from n senders, each sending
// k messages numbered from 0.
type checker struct {
	next      []uint32 // next expected sequence per sender
	counts    Counts
	latencies []time.Duration
	last      time.Time // when the last message arrived
	keepLat   bool
	buf, want []byte // decoded body and expected filler, reused
}

func newChecker(n int, keepLatency bool) *checker {
	return &checker{next: make([]uint32, n), keepLat: keepLatency}
}

var (
	msgPrefix = []byte(`{"v":2,"type":"msg",`)
	fromKey   = []byte(`"from":"c`)
	bodyKey   = []byte(`"body":"`)
	oldKey    = []byte(`"old":true`)
)

// check verifies one frame. Frames other than live messages from bench
// clients (named c<index>) are ignored: joins, leaves, catch-up, an
// abuser's messages.
func (k *checker) check(frame []byte, now time.Time) {
	if !bytes.HasPrefix(frame, msgPrefix) || bytes.Contains(frame, oldKey) {
		return
	}
	i := bytes.Index(frame, fromKey)
	if i < 0 {
		return
	}
	rest := frame[i+len(fromKey):]
	q := bytes.IndexByte(rest, '"')
	if q <= 0 {
		return
	}
	from, err := strconv.Atoi(string(rest[:q]))
	if err != nil {
		return
	}
	k.counts.Delivered++
	k.last = now
	j := bytes.Index(frame, bodyKey)
	if j < 0 {
		k.counts.Corrupt++
		return
	}
	enc := frame[j+len(bodyKey):]
	if e := bytes.IndexByte(enc, '"'); e >= 0 {
		enc = enc[:e]
	} else {
		k.counts.Corrupt++
		return
	}
	if m := base64.StdEncoding.DecodedLen(len(enc)); cap(k.buf) < m && m <= maxBody+3 {
		k.buf = make([]byte, m)
		k.want = make([]byte, m)
	}
	n, derr := base64.StdEncoding.Decode(k.buf[:cap(k.buf)], enc[:min(len(enc), base64.StdEncoding.EncodedLen(cap(k.buf)))])
	b := k.buf[:n]
	if derr != nil || n < 18 || crc32.ChecksumIEEE(b[:n-4]) != binary.BigEndian.Uint32(b[n-4:]) {
		k.counts.Corrupt++
		return
	}
	sender := int(binary.BigEndian.Uint16(b[0:]))
	seq := binary.BigEndian.Uint32(b[2:])
	want := k.want[:n-18]
	fill(want, sender, int(seq))
	if sender != from || sender >= len(k.next) || !bytes.Equal(want, b[14:n-4]) {
		k.counts.Corrupt++
		return
	}
	switch next := k.next[sender]; {
	case seq < next:
		k.counts.Duplicated++
		return
	case seq > next:
		k.counts.Lost += int64(seq - next)
	}
	k.next[sender] = seq + 1
	if k.keepLat {
		sent := time.Duration(binary.BigEndian.Uint64(b[6:]))
		k.latencies = append(k.latencies, now.Sub(epoch)-sent)
	}
}

// finish counts what never came: each sender was to send perSender.
func (k *checker) finish(self, perSender int) {
	for s, next := range k.next {
		if s != self && int(next) < perSender {
			k.counts.Lost += int64(perSender - int(next))
		}
	}
}

// readMessage reads the next whole message into buf, reusing its memory.
func (c *client) readMessage(buf []byte) ([]byte, error) {
	_, r, err := c.ws.NextReader()
	if err != nil {
		return buf, err
	}
	return wsread.Append(buf[:0], r)
}

// readUntil reads frames into k until it has seen want messages, the
// deadline passes or the connection fails.
func (c *client) readUntil(k *checker, want int64, deadline time.Time) error {
	c.ws.SetReadDeadline(deadline)
	buf := make([]byte, 0, 512)
	for k.counts.Delivered < want {
		var err error
		if buf, err = c.readMessage(buf); err != nil {
			return err
		}
		k.check(buf, time.Now())
	}
	return nil
}

// closeAll closes cs as a page does when its member leaves: a close
// frame, so that each session leaves its room at once rather than going
// away for the resume window. The sockets are closed a moment later:
// closing one with unread data in it sends a TCP reset, which can destroy
// the close frame before the server reads it.
func closeAll(cs []*client) {
	for _, c := range cs {
		if c != nil {
			c.sayBye()
		}
	}
	time.Sleep(leaveGrace)
	for _, c := range cs {
		if c != nil {
			c.ws.Close()
		}
	}
}

// leaveGrace is how long a leaving client waits between its close frame
// and closing its socket.
const leaveGrace = 500 * time.Millisecond

func (c *client) sayBye() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
}

// leave closes one client as closeAll does.
func (c *client) leave() {
	c.sayBye()
	time.Sleep(leaveGrace)
	c.ws.Close()
}

// dialMany connects n clients to rooms of perRoom members, with a bounded
// number of handshakes at once.
func dialMany(ctx context.Context, url, prefix string, n, perRoom int) ([]*client, error) {
	return dialOver(ctx, []string{url}, prefix, n, perRoom)
}

// dialOver is dialMany over several servers (instances of a cluster):
// client i goes to urls[i%len(urls)].
func dialOver(ctx context.Context, urls []string, prefix string, n, perRoom int) ([]*client, error) {
	cs := make([]*client, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dial(ctx, urls[i%len(urls)], fmt.Sprintf("%s-%d", prefix, i/perRoom), i%perRoom)
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
				return
			}
			cs[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		closeAll(cs)
		return nil, err
	}
	return cs, nil
}
