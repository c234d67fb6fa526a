package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// A message body is 105 bytes, the size of the envelope of a short chat
// message (1 + 16 + 12 + 60 + 16), base64-encoded to 140 characters:
//
//	[0:2] sender index  [2:6] sequence  [6:14] send time (ns since epoch)
//	[14:101] filler from (sender, sequence)  [101:105] CRC-32 of [0:101]
const (
	bodyBytes = 105
	frameSize = 2 + len(`{"v":1,"type":"msg","from":"c199","body":""}`) + 140 // as the hub sends it
)

// epoch is the zero of send times; clients and checker share the process.
var epoch = time.Now()

func makeBody(sender, seq int, sent time.Duration) string {
	var b [bodyBytes]byte
	binary.BigEndian.PutUint16(b[0:], uint16(sender))
	binary.BigEndian.PutUint32(b[2:], uint32(seq))
	binary.BigEndian.PutUint64(b[6:], uint64(sent))
	fill(b[14:101], sender, seq)
	binary.BigEndian.PutUint32(b[101:], crc32.ChecksumIEEE(b[:101]))
	return base64.StdEncoding.EncodeToString(b[:])
}

func fill(b []byte, sender, seq int) {
	x := uint32(sender)*2654435761 ^ uint32(seq)*40503
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
}

func msgFrame(sender, seq int, sent time.Duration) []byte {
	return []byte(`{"v":1,"type":"msg","body":"` + makeBody(sender, seq, sent) + `"}`)
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

// dial connects and joins room as "c<index>", returning after the welcome.
func dial(ctx context.Context, url, room string, index int) (*client, error) {
	d := &dialer
	if strings.HasPrefix(room, "soak") || strings.HasPrefix(room, "churn") || strings.HasPrefix(room, "idle") {
		d = &smallDialer
	}
	ws, _, err := d.DialContext(ctx, wsURL(url), http.Header{"Origin": {strings.TrimSuffix(url, "/")}})
	if err != nil {
		return nil, err
	}
	c := &client{ws: ws, index: index}
	join := `{"v":1,"type":"join","room":"` + room + `","name":"c` + strconv.Itoa(index) + `"}`
	if err := c.send([]byte(join)); err != nil {
		ws.Close()
		return nil, err
	}
	ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, b, err := ws.ReadMessage()
	ws.SetReadDeadline(time.Time{})
	if err != nil {
		ws.Close()
		return nil, err
	}
	if !bytes.Contains(b, []byte(`"type":"welcome"`)) {
		ws.Close()
		return nil, fmt.Errorf("join refused: %s", b)
	}
	return c, nil
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
}

func newChecker(n int, keepLatency bool) *checker {
	return &checker{next: make([]uint32, n), keepLat: keepLatency}
}

var (
	msgPrefix = []byte(`{"v":1,"type":"msg","from":"c`)
	bodyKey   = []byte(`","body":"`)
)

// check verifies one frame. Frames other than messages (joins, leaves)
// are ignored.
func (k *checker) check(frame []byte, now time.Time) {
	if !bytes.HasPrefix(frame, msgPrefix) {
		return
	}
	k.counts.Delivered++
	k.last = now
	rest := frame[len(msgPrefix):]
	i := bytes.Index(rest, bodyKey)
	if i < 0 {
		k.counts.Corrupt++
		return
	}
	from, err := strconv.Atoi(string(rest[:i]))
	enc := rest[i+len(bodyKey):]
	j := bytes.IndexByte(enc, '"')
	var b [bodyBytes + 3]byte
	n, derr := base64.StdEncoding.Decode(b[:], enc[:max(j, 0)])
	if err != nil || j < 0 || derr != nil || n != bodyBytes ||
		crc32.ChecksumIEEE(b[:101]) != binary.BigEndian.Uint32(b[101:]) {
		k.counts.Corrupt++
		return
	}
	sender := int(binary.BigEndian.Uint16(b[0:]))
	seq := binary.BigEndian.Uint32(b[2:])
	var want [87]byte
	fill(want[:], sender, int(seq))
	if sender != from || sender >= len(k.next) || !bytes.Equal(want[:], b[14:101]) {
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
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
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

func closeAll(cs []*client) {
	for _, c := range cs {
		if c != nil {
			c.ws.Close()
		}
	}
}

// dialMany connects n clients to rooms of perRoom members, with a bounded
// number of handshakes at once.
func dialMany(ctx context.Context, url, prefix string, n, perRoom int) ([]*client, error) {
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
			c, err := dial(ctx, url, fmt.Sprintf("%s-%d", prefix, i/perRoom), i%perRoom)
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
