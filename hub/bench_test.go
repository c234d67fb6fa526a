package hub

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countConn is a transport that counts what the hub writes to it.
type countConn struct {
	bytes, writes atomic.Int64
}

func (c *countConn) Write(p []byte) (int, error) {
	c.bytes.Add(int64(len(p)))
	c.writes.Add(1)
	return len(p), nil
}
func (c *countConn) Close() error { return nil }

// BenchmarkFanOut measures the hub's path from a client's msg frame to
// bytes handed to every other member's transport: decode, validate,
// encode once, queue for each member, batch and write. The transports
// discard, so this is the hub's cost alone; ns/delivery is per member
// reached.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{10, 50, 200} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) { benchFanOut(b, n) })
	}
}

func benchFanOut(b *testing.B, n int) {
	h := New(Config{Rate: 1e12, Burst: 1 << 30, ByteRate: 1 << 40, MaxMembers: n, MaxConnsPerPeer: n, SendQueue: 1 << 20, SendQueueBytes: 1 << 30, JoinBurst: n})
	conns := make([]*countConn, n)
	var sender *Session
	for i := range n {
		conns[i] = &countConn{}
		s := h.Open(conns[i], "bench")
		s.Receive([]byte(joinFrame(roomID(0), fmt.Sprintf("m%d", i))))
		if i == 0 {
			sender = s
		}
	}
	body := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", 105))) // a short chat message's envelope
	frame := []byte(`{"v":2,"type":"msg","body":"` + body + `"}`)
	// Each frame carries its seq: the frames get longer as seq grows.
	base := int64(len(h.msgFrame(0, sender.m, []byte(body), 0))) - 1
	var want int64
	for seq := 1; seq <= b.N; seq++ {
		want += base + int64(len(strconv.Itoa(seq)))
	}
	// Let the join frames drain, then count from zero.
	time.Sleep(50 * time.Millisecond)
	start := make([]int64, n)
	for i, c := range conns {
		start[i] = c.bytes.Load()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		sender.Receive(frame)
	}
	for i := 1; i < n; i++ {
		for conns[i].bytes.Load()-start[i] < want {
			time.Sleep(10 * time.Microsecond)
		}
	}
	b.StopTimer()
	var writes int64
	for _, c := range conns[1:] {
		writes += c.writes.Load()
	}
	deliveries := float64(b.N) * float64(n-1)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/delivery")
	b.ReportMetric(deliveries/float64(writes), "frames/write")
}
