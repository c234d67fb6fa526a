package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/onionchat/onionchat/hub"
)

// scenarioTimeout bounds every wait for deliveries.
const scenarioTimeout = 120 * time.Second

// Burst is the burst fan-out scenario: N clients in one room each send K
// messages back to back.
type Burst struct {
	N, K             int     `json:"-"`
	Clients          int     `json:"clients"`
	PerSender        int     `json:"messages_per_sender"`
	BodyBytes        int     `json:"body_bytes"`         // the envelope, before base64
	FrameBytes       int     `json:"frame_bytes"`        // one delivery as the hub sends it, WebSocket header included
	WireBytesPerMsg  float64 `json:"wire_bytes_per_msg"` // what the server wrote per delivery (/proc/PID/io), measured`
	Seconds          float64 `json:"seconds"`
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
	ServerNsPerDeliv float64 `json:"server_cpu_ns_per_delivery"`
	RawBatchedPerSec float64 `json:"raw_batched_records_per_sec"`
	Counts           Counts  `json:"counts"`
	Server           Server  `json:"server"`
	Load             Load    `json:"load"`
}

var runID = time.Now().UnixNano() % 1e6

// startReaders has each of cs read until it has seen want messages or the
// deadline passes, checking them (and timing them, if latencies) with a
// checker of its own; wait on readers before using the checkers.
func startReaders(cs []*client, want int64, deadline time.Time, latencies bool) (checkers []*checker, readers *sync.WaitGroup) {
	checkers = make([]*checker, len(cs))
	readers = new(sync.WaitGroup)
	for i, c := range cs {
		checkers[i] = newChecker(len(cs), latencies)
		readers.Go(func() { c.readUntil(checkers[i], want, deadline) })
	}
	return checkers, readers
}

// tally counts what every reader of a scenario got, each of the others
// having sent perSender messages, want of them for each reader.
func tally(checkers []*checker, perSender int, want int64) Counts {
	var c Counts
	for i, ck := range checkers {
		ck.finish(i, perSender)
		c.add(ck.counts, want)
	}
	return c
}

func burst(ctx context.Context, urls []string, srv *server, n, k, body int) (Burst, error) {
	r := Burst{N: n, K: k, Clients: n, PerSender: k, BodyBytes: body, FrameBytes: wsFrameBytes(frameSize(body))}
	cs, err := dialOver(ctx, urls, fmt.Sprintf("burst-%d-%d-%d-%d", n, body, len(urls), runID), n, n)
	if err != nil {
		return r, err
	}
	defer closeAll(cs)
	want := int64((n - 1) * k)
	checkers, readers := startReaders(cs, want, time.Now().Add(scenarioTimeout), false)
	frames := make([][][]byte, n)
	for i := range n {
		for s := range k {
			frames[i] = append(frames[i], msgFrameN(i, s, body, 0))
		}
	}
	m := startMeter(srv)
	start := time.Now()
	var senders sync.WaitGroup
	for i, c := range cs {
		senders.Go(func() {
			for _, f := range frames[i] {
				if c.send(f) != nil {
					return
				}
			}
		})
	}
	senders.Wait()
	readers.Wait()
	r.Server, r.Load = m.stop()
	r.Counts = tally(checkers, k, want)
	var last time.Time
	for _, ck := range checkers {
		if ck.last.After(last) {
			last = ck.last
		}
	}
	d := last.Sub(start)
	r.Seconds = d.Seconds()
	if d > 0 {
		r.DeliveriesPerSec = float64(r.Counts.Delivered) / d.Seconds()
	}
	if r.Counts.Delivered > 0 {
		r.ServerNsPerDeliv = r.Server.CPUSeconds * 1e9 / float64(r.Counts.Delivered)
		r.WireBytesPerMsg = float64(r.Server.WroteBytes) / float64(r.Counts.Delivered)
	}
	return r, nil
}

// wsFrameBytes is the size of a server WebSocket frame with n bytes of
// payload: 2 bytes of header, 2 or 8 more past 125 and 65,535 bytes.
func wsFrameBytes(n int) int {
	switch {
	case n < 126:
		return n + 2
	case n <= 0xffff:
		return n + 4
	}
	return n + 10
}

// Paced is the paced latency scenario: N clients send Rate messages a
// second in all for a while; latency is from send to each delivery.
type Paced struct {
	Clients int     `json:"clients"`
	Rate    int     `json:"messages_per_sec"`
	Seconds float64 `json:"seconds"`
	P50Ms   float64 `json:"p50_ms"`
	P99Ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
	Counts  Counts  `json:"counts"`
	Server  Server  `json:"server"`
	Load    Load    `json:"load"`
}

func paced(ctx context.Context, urls []string, srv *server, n, rate int, dur time.Duration) (Paced, error) {
	r := Paced{Clients: n, Rate: rate, Seconds: dur.Seconds()}
	cs, err := dialOver(ctx, urls, fmt.Sprintf("paced-%d-%d", len(urls), runID), n, n)
	if err != nil {
		return r, err
	}
	defer closeAll(cs)
	perClient := int(float64(rate) * dur.Seconds() / float64(n))
	interval := time.Duration(float64(n) / float64(rate) * float64(time.Second))
	want := int64((n - 1) * perClient)
	checkers, readers := startReaders(cs, want, time.Now().Add(dur+scenarioTimeout), true)
	m := startMeter(srv)
	start := time.Now()
	var senders sync.WaitGroup
	for i, c := range cs {
		senders.Go(func() {
			offset := time.Duration(i) * interval / time.Duration(n)
			for s := range perClient {
				at := start.Add(offset + time.Duration(s)*interval)
				time.Sleep(time.Until(at))
				if c.send(msgFrame(i, s, time.Since(epoch))) != nil {
					return
				}
			}
		})
	}
	senders.Wait()
	readers.Wait()
	r.Server, r.Load = m.stop()
	r.Counts = tally(checkers, perClient, want)
	var lat []time.Duration
	for _, ck := range checkers {
		lat = append(lat, ck.latencies...)
	}
	r.P50Ms, r.P99Ms, r.MaxMs = percentiles(lat)
	return r, nil
}

// Idle is the idle memory scenario: N joined connections that do nothing.
type Idle struct {
	Conns      int     `json:"conns"`
	Rooms      int     `json:"rooms"`
	RSSBefore  int64   `json:"rss_before_kib"`
	RSSAfter   int64   `json:"rss_after_kib"`
	KiBPerConn float64 `json:"kib_per_conn"`
	Load       Load    `json:"load"`
}

type idleCase struct{ n, rooms int }

// idle measures the case on a fresh server.
func idle(ctx context.Context, bin string, ic idleCase) (Idle, error) {
	r := Idle{Conns: ic.n, Rooms: ic.rooms}
	var err error
	r.RSSBefore, r.RSSAfter, r.Load, err = memory(ctx, bin, "idle", ic.n, (ic.n+ic.rooms-1)/ic.rooms, func([]*client) {})
	if err != nil {
		return r, err
	}
	r.KiBPerConn = float64(r.RSSAfter-r.RSSBefore) / float64(ic.n)
	return r, nil
}

// memory measures what clients cost a server of its own (freshServer):
// it connects n clients to rooms of perRoom members, has use drive them,
// lets the garbage be collected and freed pages go back, and returns the
// server's resident memory before and after, KiB, and the machine's load
// meanwhile. The clients stay connected until then.
func memory(ctx context.Context, bin, name string, n, perRoom int, use func(cs []*client)) (before, after int64, load Load, err error) {
	srv, err := freshServer(ctx, bin)
	if err != nil {
		return 0, 0, load, err
	}
	defer srv.stop()
	pid := srv.cmd.Process.Pid
	before, _ = procRSS(pid)
	m := startMeter(srv)
	cs, err := dialMany(ctx, srv.url, fmt.Sprintf("%s-%d", name, runID), n, perRoom)
	if err != nil {
		return before, 0, load, err
	}
	defer closeAll(cs)
	use(cs)
	time.Sleep(5 * time.Second)
	after, _ = procRSS(pid)
	_, load = m.stop()
	return before, after, load, nil
}

// freshServer starts a server of its own for a memory scenario, so that
// memory freed by earlier scenarios cannot flatter the figure, and warms
// it up: the first connections page in code and runtime structures that
// every later one shares; they are not a cost of what is measured.
func freshServer(ctx context.Context, bin string) (*server, error) {
	srv, err := startServer(ctx, bin, benchConfig, nil, nil)
	if err != nil {
		return nil, err
	}
	warm, err := dialMany(ctx, srv.url, fmt.Sprintf("warm-%d", runID), 20, 20)
	if err != nil {
		srv.stop()
		return nil, err
	}
	closeAll(warm)
	time.Sleep(2 * time.Second)
	return srv, nil
}

// Raw is the machine's own ceiling: one writer sending records of the
// hub's frame size to N plain loopback TCP readers, one record per write
// or 16 per write.
type Raw struct {
	Readers         int     `json:"readers"`
	RecordBytes     int     `json:"record_bytes"`
	RecordsPerWrite int     `json:"records_per_write"`
	Records         int     `json:"records"`
	RecordsPerSec   float64 `json:"records_per_sec"`
}

// rawCeiling measures unbatched then batched delivery of about total
// records to n readers.
func rawCeiling(ctx context.Context, n, size, total int) []Raw {
	perReader := max(total/max(n, 1), 1)
	var out []Raw
	for _, batch := range []int{1, 16} {
		out = append(out, rawRun(n, size, perReader, batch))
	}
	return out
}

func rawRun(n, size, perReader, batch int) Raw {
	r := Raw{Readers: n, RecordBytes: size, RecordsPerWrite: batch, Records: n * perReader}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return r
	}
	defer ln.Close()
	var readers sync.WaitGroup
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return r
		}
		readers.Go(func() {
			io.CopyN(io.Discard, c, int64(perReader*size))
			c.Close()
		})
		s, err := ln.Accept()
		if err != nil {
			return r
		}
		conns = append(conns, s)
	}
	buf := make([]byte, size*batch)
	start := time.Now()
	for sent := 0; sent < perReader; sent += batch {
		b := buf[:size*min(batch, perReader-sent)]
		for _, c := range conns {
			c.Write(b)
		}
	}
	readers.Wait()
	d := time.Since(start)
	for _, c := range conns {
		c.Close()
	}
	r.RecordsPerSec = float64(r.Records) / d.Seconds()
	return r
}

// Window is the resume window's memory: rooms whose kept frames (the
// broadcast frames of the last hub.resume_window, for members who
// reconnect) are at their cap, hub.MaxRoomBytes.
type Window struct {
	Rooms         int     `json:"rooms"`
	SentPerRoom   int     `json:"sent_per_room"`
	BodyBytes     int     `json:"body_bytes"`
	CapBytes      int     `json:"cap_bytes_per_room"`
	WindowSeconds float64 `json:"window_seconds"`
	RSSBefore     int64   `json:"rss_before_kib"`
	RSSAfter      int64   `json:"rss_after_kib"`
	KiBPerRoom    float64 `json:"kib_per_room"`
	Counts        Counts  `json:"counts"`
}

// window fills rooms of two members, one sending padded short messages
// and one reading them, until each room keeps more than it may (so its
// kept frames are at the cap), and measures the server's memory per room
// on a fresh server.
func window(ctx context.Context, bin string, rooms int) (Window, error) {
	per := hub.MaxRoomBytes/frameSize(paddedBytes)*3/2 + 1
	r := Window{Rooms: rooms, SentPerRoom: per, BodyBytes: paddedBytes, CapBytes: hub.MaxRoomBytes, WindowSeconds: hub.DefaultResumeWindow.Seconds()}
	var err error
	r.RSSBefore, r.RSSAfter, _, err = memory(ctx, bin, "window", 2*rooms, 2, func(cs []*client) {
		var readers []*client
		for i := 1; i < len(cs); i += 2 {
			readers = append(readers, cs[i])
		}
		checkers, wait := startReaders(readers, int64(per), time.Now().Add(scenarioTimeout), false)
		var senders sync.WaitGroup
		for i := 0; i < len(cs); i += 2 {
			senders.Go(func() {
				for s := range per {
					if cs[i].send(msgFrameN(0, s, paddedBytes, 0)) != nil {
						return
					}
				}
			})
		}
		senders.Wait()
		wait.Wait()
		for _, k := range checkers {
			r.Counts.add(k.counts, int64(per))
		}
	})
	if err != nil {
		return r, err
	}
	r.KiBPerRoom = float64(r.RSSAfter-r.RSSBefore) / float64(rooms)
	return r, nil
}
