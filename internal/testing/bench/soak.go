package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// SoakOptions configures a soak run.
type SoakOptions struct {
	Short    bool          // the test command's version: 2,000 clients, under 3 minutes
	Clients  int           // well-behaved plus churning plus abusive; 0: 10,000 (2,000 short)
	Duration time.Duration // of the abuse phase; 0: 10 minutes (35 s short)
	Binary   string        // the onionchat binary to start (see Build)
	JSON     string        // also write the report here
	Out      io.Writer     // nil: os.Stdout
}

// SoakReport is what a soak run measured.
type SoakReport struct {
	Time    time.Time `json:"time"`
	Machine Machine   `json:"machine"`
	Clients int       `json:"clients"`
	Phases  []Phase   `json:"phases"`
	Samples []Sample  `json:"samples"`

	// Cold is the server before any load but a few connections; Baseline
	// is after a warm-up cycle of the same shape as the soak, once
	// everyone has left. Go keeps some runtime structures at their
	// high-water mark (goroutine descriptors, a cache of stacks, GC
	// metadata), so the no-leak check compares After with Baseline:
	// nothing may grow with the soak's length.
	Cold     Sample `json:"cold"`
	Baseline Sample `json:"baseline"`
	After    Sample `json:"after"` // once everyone has left

	Abuse AbuseCounts `json:"abuse"`
}

// Phase is one stretch of the run: calm (well-behaved only) or abuse.
type Phase struct {
	Name        string  `json:"name"`
	Seconds     float64 `json:"seconds"`
	WellBehaved int     `json:"well_behaved"`
	Counts      Counts  `json:"counts"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
}

// Sample is the server's state at one moment.
type Sample struct {
	At         float64 `json:"at_s"`
	Sessions   int     `json:"sessions"`
	Pending    int     `json:"pending"` // connections not (yet) upgraded
	Away       int     `json:"away"`    // sessions kept for the resume window
	Rooms      int     `json:"rooms"`
	KeptKiB    int64   `json:"kept_kib"` // frames kept for catch-up
	Goroutines int     `json:"goroutines"`
	RSSKiB     int64   `json:"rss_kib"`
	AnonKiB    int64   `json:"rss_anon_kib"` // heap and stacks: RSS without the program's code pages
	HeapKiB    int64   `json:"go_heap_inuse_kib"`
	StackKiB   int64   `json:"go_stack_inuse_kib"`
}

// AbuseCounts says what the abusive clients did and how the server
// answered.
type AbuseCounts struct {
	FloodFrames    int64 `json:"flood_frames"`
	FloodClosed    int64 `json:"flood_closed_1008"`
	Lurkers        int64 `json:"lurkers_opened"`
	LurkersClosed  int64 `json:"lurkers_closed"`
	DeafJoined     int64 `json:"never_reading_joined"`
	DeafDropped    int64 `json:"never_reading_dropped"`
	OversizeSent   int64 `json:"oversize_sent"`
	OversizeClosed int64 `json:"oversize_closed_1009"`
	GarbageSent    int64 `json:"garbage_connections"`
	GarbageErrors  int64 `json:"garbage_error_frames"`
	TakenAttempts  int64 `json:"taken_name_attempts"`
	TakenRefused   int64 `json:"taken_name_refused"` // the rest were cut off by join_timeout
	TakenJoined    int64 `json:"taken_name_joined"`  // must be 0
	ChurnJoins     int64 `json:"churn_joins"`
	ChurnResets    int64 `json:"churn_resets"`
	ChurnHalfOpen  int64 `json:"churn_half_open"`
	ChurnResumed   int64 `json:"churn_resumed"`          // sessions taken back after a reset or half-open
	PingFrames     int64 `json:"ping_flood_frames"`      // WebSocket pings sent as fast as possible
	PingClosed     int64 `json:"ping_flood_closed_1008"` // every frame counts: control frames too
	TCPIdle        int64 `json:"tcp_idle_opened"`        // connections that never send a byte (no TLS, no request)
	TCPIdleClosed  int64 `json:"tcp_idle_closed"`        // closed by the server within the handshake timeout
}

// soakConfig: every limit on at its default except those that would make
// a short run wait minutes (timeouts) or that one loopback address would
// hit at once (per-peer, total).
const soakConfig = `mode = "local"
[hub]
max_conns = 20000
max_conns_per_peer = 20000
join_rate = 100000.0
join_burst = 100000
max_rooms = 5000
ping_interval = "1s"
idle_timeout = "4s"
join_timeout = "2s"
write_timeout = "4s"
resume_window = "5s"
[web]
handshake_timeout = "2s"
`

// soakMaxPending is the bound on connections before the upgrade at
// soakConfig's max_conns (web.PendingLimits).
const soakMaxPending = 20000 / 4

// soakServer is a server started with its stderr read for stats lines.
type soakServer struct {
	*server
	mu    sync.Mutex
	stats chan Sample
}

var statsRe = regexp.MustCompile(`msg=stats sessions=(\d+) pending=(\d+) away=(\d+) rooms=(\d+) .*kept_kib=(\d+) .*goroutines=(\d+) heap_kib=(\d+) stack_kib=(\d+)`)

func startSoakServer(ctx context.Context, bin string) (*soakServer, error) {
	stats := make(chan Sample, 16)
	onStderr := func(line string) {
		m := statsRe.FindStringSubmatch(line)
		if m == nil {
			return
		}
		num := func(i int) int64 { n, _ := strconv.ParseInt(m[i], 10, 64); return n }
		select {
		case stats <- Sample{Sessions: int(num(1)), Pending: int(num(2)), Away: int(num(3)), Rooms: int(num(4)), KeptKiB: num(5),
			Goroutines: int(num(6)), HeapKiB: num(7), StackKiB: num(8)}:
		default:
		}
	}
	// As systemd/onionchat.service runs it: dead goroutines keep 2 KiB
	// stacks rather than the running average.
	srv, err := startServer(ctx, bin, soakConfig, []string{"GODEBUG=adaptivestackstart=0"}, onStderr)
	if err != nil {
		return nil, fmt.Errorf("soak: %w", err)
	}
	return &soakServer{server: srv, stats: stats}, nil
}

// sample asks the server for its counts (SIGUSR1) and reads its RSS.
func (s *soakServer) sample(start time.Time) Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.stats) > 0 {
		<-s.stats
	}
	s.cmd.Process.Signal(syscall.SIGUSR1)
	var smp Sample
	select {
	case smp = <-s.stats:
	case <-time.After(5 * time.Second):
		smp = Sample{Sessions: -1, Goroutines: -1}
	}
	smp.At = time.Since(start).Seconds()
	smp.RSSKiB, _ = procRSS(s.cmd.Process.Pid)
	smp.AnonKiB = procAnon(s.cmd.Process.Pid)
	return smp
}

// Soak runs the soak: a calm phase with well-behaved members only, an
// abuse phase with churn and abusive clients beside them, then everyone
// leaves. It fails on what does not depend on the machine's load (see
// verdict): a well-behaved delivery lost, duplicated or corrupt, a limit
// not enforced, goroutines or memory not back to their baseline, or a
// gross latency regression. The p99 ratio is a figure: it is printed
// and kept in the JSON report, and the 3x target is reported, not
// enforced.
func Soak(ctx context.Context, o SoakOptions) (*SoakReport, error) {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Clients == 0 {
		o.Clients = 10000
		if o.Short {
			o.Clients = 2000
		}
	}
	if o.Duration == 0 {
		o.Duration = 10 * time.Minute
		if o.Short {
			o.Duration = 35 * time.Second
		}
	}
	rep := &SoakReport{Time: time.Now().UTC(), Machine: machine(), Clients: o.Clients}
	srv, err := startSoakServer(ctx, o.Binary)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	start := time.Now()
	fmt.Fprintf(o.Out, "onionchat soak: %d clients, %v of abuse, server %s\n", o.Clients, o.Duration, srv.url)

	warm, err := dialMany(ctx, srv.url, fmt.Sprintf("soakcold-%d", runID), 20, 20)
	if err != nil {
		return nil, err
	}
	closeAll(warm)
	time.Sleep(2 * time.Second)
	rep.Cold = srv.sample(start)
	// The baseline is taken after a warm-up cycle of the same shape (a
	// short calm and abuse phase with as many clients), once everyone has
	// left: Go keeps some runtime structures at their high-water mark
	// (goroutine descriptors, a cache of stacks, GC metadata), and the
	// no-leak check is that nothing grows with the soak's length.
	wb := o.Clients / 2 / 10 * 10 // half the clients behave, in rooms of 10
	if _, _, _, err := cycle(ctx, srv, fmt.Sprintf("soakwarm-%d", runID), wb, o.Clients-wb, 5*time.Second, 15*time.Second, io.Discard); err != nil {
		return nil, fmt.Errorf("soak: warm-up: %w", err)
	}
	rep.Baseline = settle(srv, start, Sample{}, 30*time.Second)
	fmt.Fprintf(o.Out, "cold: %d goroutines, heap and stacks %.1f MiB; after a warm-up cycle of %d clients: %d goroutines, %.1f MiB\n",
		rep.Cold.Goroutines, float64(rep.Cold.AnonKiB)/1024, o.Clients, rep.Baseline.Goroutines, float64(rep.Baseline.AnonKiB)/1024)

	sampling, stopSampling := context.WithCancel(ctx)
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		for {
			select {
			case <-sampling.Done():
				return
			case <-time.After(5 * time.Second):
				smp := srv.sample(start)
				rep.Samples = append(rep.Samples, smp)
				fmt.Fprintf(o.Out, "  t=%5.0fs sessions %5d goroutines %5d RSS %6.1f MiB\n", smp.At, smp.Sessions, smp.Goroutines, float64(smp.RSSKiB)/1024)
			}
		}
	}()

	// The calm phase is as long as the abuse phase (up to a minute), so
	// that both p99s come from as many deliveries and are as exposed to
	// whatever else the machine is doing.
	calmFor := min(o.Duration, time.Minute)
	calm, abused, counts, err := cycle(ctx, srv, fmt.Sprintf("soak-%d", runID), wb, o.Clients-wb, calmFor, o.Duration, o.Out)
	if err != nil {
		stopSampling()
		<-samplerDone
		return nil, err
	}
	rep.Phases = append(rep.Phases, calm, abused)
	rep.Abuse = counts

	stopSampling()
	<-samplerDone
	// Everyone has left: wait (bounded) for the server to come back down.
	after := settle(srv, start, rep.Baseline, 60*time.Second)
	rep.After = after
	printSoak(o.Out, rep)
	if o.JSON != "" {
		writeJSON(o.JSON, rep)
	}
	problems := verdict(rep)
	if len(problems) > 0 {
		return rep, fmt.Errorf("soak: %s", strings.Join(problems, "; "))
	}
	return rep, nil
}

// cycle runs one soak cycle: wb well-behaved members in rooms of 10
// (rooms named prefix-N) talk calmly for calmFor, then for abuseFor beside
// n abusive and churning clients, then leave. The abusers run in a process
// of their own: sharing this one's Go scheduler, hundreds of runnable
// abuser goroutines would delay the members' readers and be counted as
// the server's latency.
func cycle(ctx context.Context, srv *soakServer, prefix string, wb, n int, calmFor, abuseFor time.Duration, out io.Writer) (calm, abused Phase, counts AbuseCounts, err error) {
	clients, err := dialMany(ctx, srv.url, prefix, wb, 10)
	if err != nil {
		return calm, abused, counts, fmt.Errorf("soak: well-behaved clients: %w", err)
	}
	defer closeAll(clients)
	members := make([]*member, len(clients))
	for i, c := range clients {
		members[i] = &member{client: c}
		go members[i].readAll()
	}
	calm = talk(ctx, members, 10, calmFor)
	calm.Name = "calm"
	fmt.Fprintf(out, "%s calm:  %d members, p50 %.2f ms p99 %.2f ms, delivered %d lost %d\n", prefix, wb, calm.P50Ms, calm.P99Ms, calm.Counts.Delivered, calm.Counts.Lost)
	abuse, err := startAbuseProcess(srv.url, prefix, n, abuseFor+5*time.Second)
	if err != nil {
		return calm, abused, counts, err
	}
	time.Sleep(2 * time.Second) // let the abusers ramp up
	abused = talk(ctx, members, 10, abuseFor)
	abused.Name = "abuse"
	if counts, err = abuse.wait(); err != nil {
		return calm, abused, counts, err
	}
	fmt.Fprintf(out, "%s abuse: %d members, p50 %.2f ms p99 %.2f ms, delivered %d lost %d\n", prefix, wb, abused.P50Ms, abused.P99Ms, abused.Counts.Delivered, abused.Counts.Lost)
	return calm, abused, counts, nil
}

// settle waits up to d for every session to end, away ones included, and
// every room to be forgotten, and for the server's housekeeping (every 2 s)
// to give freed memory back, then takes samples
// until memory stops falling (or, given a target, comes within 10% of
// it), and returns the lowest: sampling itself makes a little garbage.
func settle(srv *soakServer, start time.Time, target Sample, d time.Duration) Sample {
	deadline := time.Now().Add(d)
	s := srv.sample(start)
	for (s.Sessions != 0 || s.Away != 0 || s.Rooms != 0) && time.Now().Before(deadline) {
		time.Sleep(time.Second)
		s = srv.sample(start)
	}
	time.Sleep(min(5*time.Second, time.Until(deadline)))
	best := srv.sample(start)
	for {
		time.Sleep(2 * time.Second)
		s = srv.sample(start)
		falling := s.AnonKiB < best.AnonKiB
		if s.AnonKiB < best.AnonKiB {
			best = s
		}
		done := !falling
		if target.AnonKiB > 0 {
			done = within(int64(best.Goroutines), int64(target.Goroutines), 0) && within(best.AnonKiB, target.AnonKiB, memSlackKiB)
		}
		if done || time.Now().After(deadline) {
			return best
		}
	}
}

// Thresholds of verdict.
const (
	// p99Target is the abuse/calm p99 ratio the soak aims at. It is
	// reported, never enforced: on this shared two-core machine a correct
	// server measured 1.7x to 4.7x in short runs and 3.3x to 6.0x in long
	// ones, so a gate at 3x fails good submissions.
	p99Target = 3.0
	// grossP99 and grossRatio: the soak fails on latency only when the
	// members' p99 under abuse is over grossP99 AND over grossRatio times
	// the calm p99. The fault this guards against (members waiting on an
	// abuser: a blocked fan-out, a lock held across a write) costs the
	// soak's write or idle timeout, 4 s, per stalled delivery; the worst
	// noise seen was 0.14 s and 6x. Both at once cannot come from load.
	grossP99   = 1000.0 // ms
	grossRatio = 20.0
	// memSlack: memory is back to baseline if it is within 10% or
	// memSlackKiB of it, whichever is larger. At the short soak's 8 MiB
	// baseline 10% is 0.8 MiB, near what one collection moves; a leak of
	// the sessions themselves (about 10 KiB each, thousands of them) is
	// tens of MiB.
	memSlackKiB = 2048
)

// verdict returns what is wrong with a soak run, judged on what the
// machine's load cannot change.
func verdict(rep *SoakReport) []string {
	var problems []string
	for _, p := range rep.Phases {
		if !p.Counts.OK() {
			problems = append(problems, fmt.Sprintf("%s phase: well-behaved deliveries %+v", p.Name, p.Counts))
		}
	}
	if len(rep.Phases) == 2 {
		calm, abused := rep.Phases[0], rep.Phases[1]
		if abused.P99Ms > grossP99 && abused.P99Ms > grossRatio*max(calm.P99Ms, 1) {
			problems = append(problems, fmt.Sprintf("gross latency regression: p99 under abuse %.0f ms (calm %.2f ms)", abused.P99Ms, calm.P99Ms))
		}
	}
	problems = append(problems, rep.Abuse.unenforced()...)
	for _, smp := range rep.Samples {
		if smp.Pending > soakMaxPending {
			problems = append(problems, fmt.Sprintf("limit not enforced: %d connections pending at t=%.0fs, bound %d", smp.Pending, smp.At, soakMaxPending))
			break
		}
	}
	if a := rep.After; a.Sessions != 0 || a.Away != 0 || a.Rooms != 0 || a.KeptKiB != 0 {
		problems = append(problems, fmt.Sprintf("not forgotten after everyone left: %d sessions, %d away, %d rooms, %d KiB of kept frames", a.Sessions, a.Away, a.Rooms, a.KeptKiB))
	}
	if !within(int64(rep.After.Goroutines), int64(rep.Baseline.Goroutines), 0) {
		problems = append(problems, fmt.Sprintf("goroutines %d after everyone left, baseline %d", rep.After.Goroutines, rep.Baseline.Goroutines))
	}
	if !within(rep.After.AnonKiB, rep.Baseline.AnonKiB, memSlackKiB) {
		problems = append(problems, fmt.Sprintf("anonymous RSS %d KiB after everyone left, baseline %d KiB", rep.After.AnonKiB, rep.Baseline.AnonKiB))
	}
	return problems
}

// unenforced lists the limits the abusers found not in force. Each
// abuser checks an outcome the server must always give, whatever the
// load: a flooder is closed with 1008, of text frames or of WebSocket
// pings; a connection that never joins is closed with 1008, and one that
// never even sends its HTTP request is closed; one that never reads is
// dropped; a frame over the limit closes with 1009; garbage gets error
// frames; and a join under a name in use never succeeds.
func (a AbuseCounts) unenforced() []string {
	var p []string
	check := func(tried int64, held bool, what string) {
		if tried > 0 && !held {
			p = append(p, "limit not enforced: "+what)
		}
	}
	check(a.FloodFrames, a.FloodClosed > 0, "the flooder was never closed with 1008")
	check(a.Lurkers, a.LurkersClosed > 0, "no connection that never joined was closed with 1008")
	check(a.DeafJoined, a.DeafDropped > 0, "no client that never reads was dropped")
	check(a.OversizeSent, a.OversizeClosed >= a.OversizeSent-oversizers, fmt.Sprintf("%d of %d frames over the limit closed with 1009", a.OversizeClosed, a.OversizeSent))
	check(a.GarbageSent, a.GarbageErrors > 0, "garbage got no error frame")
	check(a.TakenAttempts, a.TakenJoined == 0, fmt.Sprintf("%d joins under a name in use succeeded", a.TakenJoined))
	check(a.PingFrames, a.PingClosed > 0, "a flood of WebSocket pings was never closed with 1008")
	check(a.TCPIdle, a.TCPIdleClosed > 0, "no connection that never sent a byte was closed by the server")
	check(a.ChurnResets, a.ChurnResumed > 0, "no session cut off by a reset was taken back within the resume window")
	return p
}

// within reports whether v is back to base: within 10%, or within slack.
func within(v, base, slack int64) bool {
	return v >= 0 && float64(v) <= max(1.1*float64(base), float64(base+slack))
}

// member is a well-behaved client: it reads for the whole run (so it
// answers pings and keeps up) and checks what it reads with the checker
// of the current phase.
type member struct {
	*client
	mu sync.Mutex
	k  *checker
}

func (m *member) readAll() {
	buf := make([]byte, 0, 512)
	for {
		var err error
		if buf, err = m.readMessage(buf); err != nil {
			return
		}
		now := time.Now()
		m.mu.Lock()
		if m.k != nil {
			m.k.check(buf, now)
		}
		m.mu.Unlock()
	}
}

func (m *member) delivered() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.k.counts.Delivered
}

// talk has every member send a message every 5 s (staggered) for d and
// checks that every member gets every message of the others in its room.
func talk(ctx context.Context, ms []*member, roomSize int, d time.Duration) Phase {
	const every = 5 * time.Second
	perSender := max(int(d/every), 1)
	p := Phase{Seconds: d.Seconds(), WellBehaved: len(ms)}
	want := int64((roomSize - 1) * perSender)
	for _, m := range ms {
		m.mu.Lock()
		m.k = newChecker(roomSize, true)
		m.mu.Unlock()
	}
	start := time.Now()
	var senders sync.WaitGroup
	for _, m := range ms {
		senders.Go(func() {
			offset := time.Duration(rand.Int64N(int64(every)))
			for s := range perSender {
				time.Sleep(time.Until(start.Add(offset + time.Duration(s)*every)))
				if ctx.Err() != nil || m.send(msgFrame(m.index, s, time.Since(epoch))) != nil {
					return
				}
			}
		})
	}
	senders.Wait()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		done := true
		for _, m := range ms {
			if m.delivered() < want {
				done = false
				break
			}
		}
		if done {
			break
		}
	}
	var lat []time.Duration
	for _, m := range ms {
		m.mu.Lock()
		k := m.k
		m.k = nil
		m.mu.Unlock()
		k.finish(m.index, perSender)
		p.Counts.add(k.counts, want)
		lat = append(lat, k.latencies...)
	}
	p.P50Ms, p.P99Ms, p.MaxMs = percentiles(lat)
	return p
}

// abuseProcess is "onionchat-bench soak -abuse URL", run by Soak: the
// abusive clients in a process of their own, this command again.
type abuseProcess struct {
	cmd *exec.Cmd
	out *strings.Builder
}

func startAbuseProcess(url, rooms string, n int, d time.Duration) (*abuseProcess, error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("soak: start abusers: %w", err)
	}
	p := &abuseProcess{out: &strings.Builder{}}
	p.cmd = exec.Command(bin, "soak", "-abuse", url, "-rooms", rooms, "-clients", strconv.Itoa(n), "-duration", d.String())
	p.cmd.Stdout = p.out
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("soak: start abusers: %w", err)
	}
	return p, nil
}

// wait waits (bounded) for the abusers to finish and reads their counts.
func (p *abuseProcess) wait() (AbuseCounts, error) {
	var ac AbuseCounts
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return ac, fmt.Errorf("soak: abusers: %w", err)
		}
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill()
		<-done
		return ac, errors.New("soak: the abusers did not stop")
	}
	if err := json.Unmarshal([]byte(p.out.String()), &ac); err != nil {
		return ac, fmt.Errorf("soak: abusers' counts: %w", err)
	}
	return ac, nil
}

// Abuse runs n abusive and churning clients against url for d and writes
// their counts to out as JSON; Soak runs it in a process of its own.
// rooms is the prefix of the well-behaved members' rooms ("soak-N"),
// where the flooder, the clients that never read and the joiners under
// taken names go.
func Abuse(ctx context.Context, url, rooms string, n int, d time.Duration, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var ac AbuseCounts
	var wg sync.WaitGroup
	startAbuse(ctx, &wg, url, rooms, n, &ac)
	<-ctx.Done()
	wg.Wait()
	return json.NewEncoder(out).Encode(&ac)
}

// oversizers is how many clients send frames over the limit; at the end
// of a run each may have one frame on its way whose answer never comes.
const oversizers = 10

// startAbuse runs n abusive and churning clients until ctx ends.
func startAbuse(ctx context.Context, wg *sync.WaitGroup, url, rooms string, n int, ac *AbuseCounts) {
	// Shares of n: 500 lurkers (or a quarter), a few flooders, some that
	// never read, oversize and garbage senders, taken-name joiners, and
	// the rest churn.
	lurkers := min(500, n/4)
	for i := range lurkers {
		wg.Go(func() { lurk(ctx, url, i, ac) })
	}
	wg.Go(func() { flood(ctx, url, rooms, 0, ac) })
	for i := range 20 {
		wg.Go(func() { deaf(ctx, url, rooms, i, ac) })
	}
	for i := range oversizers {
		wg.Go(func() { oversize(ctx, url, i, ac) })
		wg.Go(func() { garbage(ctx, url, i, ac) })
	}
	for i := range 100 {
		wg.Go(func() { takenNames(ctx, url, rooms, i, ac) })
	}
	wg.Go(func() { pingFlood(ctx, url, ac) })
	tcpIdlers := min(200, n/10)
	for range tcpIdlers {
		wg.Go(func() { tcpIdle(ctx, url, ac) })
	}
	for i := range max(n-lurkers-142-tcpIdlers, 0) {
		wg.Go(func() { churn(ctx, url, i, ac) })
	}
}

func rawDial(ctx context.Context, url string) (*websocket.Conn, error) {
	ws, _, err := smallDialer.DialContext(ctx, wsURL(url), map[string][]string{"Origin": {strings.TrimSuffix(url, "/")}})
	return ws, err
}

func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

// pause waits d or until ctx ends, reporting whether to go on.
func pause(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// lurk opens a connection that never sends anything; the server closes it
// after join_timeout; it opens another.
func lurk(ctx context.Context, url string, i int, ac *AbuseCounts) {
	for pause(ctx, time.Duration(500+rand.IntN(2000))*time.Millisecond) {
		ws, err := rawDial(ctx, url)
		if err != nil {
			continue
		}
		atomic.AddInt64(&ac.Lurkers, 1)
		stop := context.AfterFunc(ctx, func() { ws.Close() })
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				if closeCode(err) == websocket.ClosePolicyViolation {
					atomic.AddInt64(&ac.LurkersClosed, 1)
				}
				break
			}
		}
		stop()
		ws.Close()
	}
}

// flood joins a room and sends as fast as it can until it is closed.
func flood(ctx context.Context, url, rooms string, i int, ac *AbuseCounts) {
	frame := msgFrame(0, 0, 0)
	join := joinFrame(fmt.Sprintf("%s-%d", rooms, i), fmt.Sprintf("flooder%d", i))
	floodWith(ctx, url, join, func(ws *websocket.Conn) error { return ws.WriteMessage(websocket.TextMessage, frame) },
		&ac.FloodFrames, &ac.FloodClosed)
}

// floodWith connects, sends first (if any), then sends with send as fast
// as it can, counting frames, until the server closes the connection,
// counting closes with 1008; and again, until ctx ends.
func floodWith(ctx context.Context, url string, first []byte, send func(*websocket.Conn) error, frames, closed1008 *int64) {
	for pause(ctx, 200*time.Millisecond) {
		ws, err := rawDial(ctx, url)
		if err != nil {
			continue
		}
		stop := context.AfterFunc(ctx, func() { ws.Close() })
		closed := make(chan int, 1)
		go func() {
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					closed <- closeCode(err)
					return
				}
			}
		}()
		if first != nil {
			ws.WriteMessage(websocket.TextMessage, first)
		}
		for ctx.Err() == nil {
			if send(ws) != nil {
				break
			}
			atomic.AddInt64(frames, 1)
		}
		if <-closed == websocket.ClosePolicyViolation {
			atomic.AddInt64(closed1008, 1)
		}
		stop()
		ws.Close()
	}
}

// deaf joins a busy room and then neither reads nor writes: no pongs, a
// filling buffer. The server must drop it (idle timeout); it checks by
// reading once the timeout has passed, then comes back.
func deaf(ctx context.Context, url, rooms string, i int, ac *AbuseCounts) {
	for pause(ctx, 100*time.Millisecond) {
		ws, err := rawDial(ctx, url)
		if err != nil {
			continue
		}
		if ws.WriteMessage(websocket.TextMessage, joinFrame(fmt.Sprintf("%s-%d", rooms, i), fmt.Sprintf("deaf%d", i))) == nil {
			atomic.AddInt64(&ac.DeafJoined, 1)
		}
		if !pause(ctx, 6*time.Second) { // soakConfig's idle_timeout is 4s
			ws.Close()
			return
		}
		ws.SetPingHandler(func(string) error { return nil })
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					atomic.AddInt64(&ac.DeafDropped, 1)
				}
				break
			}
		}
		ws.Close()
	}
}

// joinFrame is a join to the room called room (see roomID) as name.
func joinFrame(room, name string) []byte {
	return []byte(`{"v":2,"type":"join","room":"` + roomID(room) + `","name":"` + name + `"}`)
}

// pingFlood sends WebSocket pings as fast as it can until it is closed:
// control frames count against the rate like any other.
func pingFlood(ctx context.Context, url string, ac *AbuseCounts) {
	floodWith(ctx, url, nil, func(ws *websocket.Conn) error {
		return ws.WriteControl(websocket.PingMessage, []byte("x"), time.Now().Add(time.Second))
	}, &ac.PingFrames, &ac.PingClosed)
}

// tcpIdle opens a TCP connection and never sends a byte (no HTTP request,
// no upgrade); the server must close it (handshake timeout), and it comes
// back.
func tcpIdle(ctx context.Context, url string, ac *AbuseCounts) {
	addr := strings.TrimPrefix(strings.TrimSuffix(url, "/"), "http://")
	for pause(ctx, time.Duration(100+rand.IntN(1000))*time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			continue
		}
		atomic.AddInt64(&ac.TCPIdle, 1)
		stop := context.AfterFunc(ctx, func() { c.Close() })
		c.SetReadDeadline(time.Now().Add(10 * time.Second)) // soakConfig's handshake_timeout is 2s
		if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil {
			atomic.AddInt64(&ac.TCPIdleClosed, 1)
		}
		stop()
		c.Close()
	}
}

// oversize sends a frame one byte over the limit and expects 1009.
func oversize(ctx context.Context, url string, i int, ac *AbuseCounts) {
	big := make([]byte, 64<<10+1)
	for pause(ctx, time.Second) {
		ws, err := rawDial(ctx, url)
		if err != nil {
			continue
		}
		if ws.WriteMessage(websocket.TextMessage, big) == nil {
			atomic.AddInt64(&ac.OversizeSent, 1)
		}
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				if closeCode(err) == websocket.CloseMessageTooBig {
					atomic.AddInt64(&ac.OversizeClosed, 1)
				}
				break
			}
		}
		ws.Close()
	}
}

// garbage sends bad JSON, unknown types and invalid UTF-8.
func garbage(ctx context.Context, url string, i int, ac *AbuseCounts) {
	frames := [][]byte{[]byte(`{not json`), []byte(`{"v":2,"type":"dance"}`), []byte(`[]`), []byte(`{"v":1,"type":"join","room":"r","name":"old"}`),
		[]byte(`{"v":2,"type":"join","room":"not a room id","name":"n"}`), []byte(`{"v":9,"type":"msg"}`), []byte("{\"v\":2,\"type\":\"\xff\"}")}
	for pause(ctx, time.Second) {
		ws, err := rawDial(ctx, url)
		if err != nil {
			continue
		}
		atomic.AddInt64(&ac.GarbageSent, 1)
		for _, f := range frames {
			ws.WriteMessage(websocket.TextMessage, f)
		}
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				break
			}
			if strings.Contains(string(b), `"type":"error"`) {
				atomic.AddInt64(&ac.GarbageErrors, 1)
			}
		}
		ws.Close()
	}
}

// maxTakenAttempts is how many joins under taken names the soak tries.
const maxTakenAttempts = 10000

// takenNames tries to join well-behaved rooms under names in use.
func takenNames(ctx context.Context, url, rooms string, i int, ac *AbuseCounts) {
	for pause(ctx, 100*time.Millisecond) && atomic.LoadInt64(&ac.TakenAttempts) < maxTakenAttempts {
		ws, err := rawDial(ctx, url)
		if err != nil {
			continue
		}
		got := make(chan struct{}, 256)
		go func() {
			for {
				_, b, err := ws.ReadMessage()
				if err != nil {
					close(got)
					return
				}
				switch {
				case strings.Contains(string(b), `"name_taken"`):
					atomic.AddInt64(&ac.TakenRefused, 1)
					got <- struct{}{}
				case strings.Contains(string(b), `"type":"welcome"`):
					atomic.AddInt64(&ac.TakenJoined, 1)
					got <- struct{}{}
				}
			}
		}()
		for k := 0; k < 30 && ctx.Err() == nil && atomic.LoadInt64(&ac.TakenAttempts) < maxTakenAttempts; k++ {
			room := fmt.Sprintf("%s-%d", rooms, (i*7+k)%50)
			if ws.WriteMessage(websocket.TextMessage, joinFrame(room, fmt.Sprintf("c%d", k%10))) != nil {
				break
			}
			atomic.AddInt64(&ac.TakenAttempts, 1)
			select {
			case <-got:
			case <-time.After(2 * time.Second):
			case <-ctx.Done():
			}
		}
		ws.Close()
		for range got {
		}
	}
}

// churn joins a room of its own, chats a little and leaves: cleanly, by
// TCP reset, or by going silent (half-open) until the server drops it.
// Sessions last seconds, as people's do on a flaky phone, not
// milliseconds: that would be a connection flood, which the lurkers are.
func churn(ctx context.Context, url string, i int, ac *AbuseCounts) {
	var resume string // the token of a session that went away, to take back
	var since atomic.Int64
	for pause(ctx, time.Duration(1000+rand.IntN(3000))*time.Millisecond) {
		room := fmt.Sprintf("churn-%d-%d", runID, i%97)
		c, welcome, err := dialJoin(ctx, url, room, 100+i, resume, since.Load())
		if err != nil {
			resume = "" // the window passed, or the name is still held: start over
			continue
		}
		atomic.AddInt64(&ac.ChurnJoins, 1)
		if resume != "" && bytes.Contains(welcome, []byte(`"resumed":true`)) {
			atomic.AddInt64(&ac.ChurnResumed, 1)
		}
		resume = ""
		c.send(msgFrame(0, 0, 0))
		go func() { // read whatever comes, so as not to be dropped as slow
			buf := make([]byte, 0, 512)
			for {
				var err error
				if buf, err = c.readMessage(buf); err != nil {
					return
				}
				if n, err := strconv.ParseInt(field(buf, "seq"), 10, 64); err == nil && bytes.HasPrefix(buf, msgPrefix) && n > since.Load() {
					since.Store(n)
				}
			}
		}()
		if !pause(ctx, time.Duration(2000+rand.IntN(4000))*time.Millisecond) {
			c.ws.Close()
			return
		}
		switch rand.IntN(3) {
		case 0:
			c.leave()
			since.Store(0)
		case 1:
			if tc, ok := c.ws.NetConn().(*net.TCPConn); ok {
				tc.SetLinger(0) // close with RST
				atomic.AddInt64(&ac.ChurnResets, 1)
			}
			c.ws.Close()
			resume = field(welcome, "resume")
		case 2:
			// Half-open: say nothing, answer no ping; the server's idle
			// timeout must notice. The socket is closed later.
			atomic.AddInt64(&ac.ChurnHalfOpen, 1)
			c.ws.SetPingHandler(func(string) error { return nil })
			pause(ctx, 6*time.Second)
			c.ws.Close()
			resume = field(welcome, "resume")
		}
	}
}

func printSoak(w io.Writer, r *SoakReport) {
	fmt.Fprintln(w, "\nphase   members  seconds  delivered  lost  dup  corrupt  p50 ms  p99 ms  max ms")
	for _, p := range r.Phases {
		fmt.Fprintf(w, "%-7s %7d  %7.0f  %9d  %4d  %3d  %7d  %6.2f  %6.2f  %6.1f\n", p.Name, p.WellBehaved, p.Seconds,
			p.Counts.Delivered, p.Counts.Lost, p.Counts.Duplicated, p.Counts.Corrupt, p.P50Ms, p.P99Ms, p.MaxMs)
	}
	if len(r.Phases) == 2 && r.Phases[0].P99Ms > 0 {
		ratio := r.Phases[1].P99Ms / r.Phases[0].P99Ms
		meets := "meets"
		if ratio > p99Target {
			meets = "over"
		}
		fmt.Fprintf(w, "p99 under abuse / calm: %.2fx (%s the %.0fx target; a figure, not a gate: see verdict)\n", ratio, meets, p99Target)
	}
	a := r.Abuse
	fmt.Fprintf(w, "abuse: flood frames %d (closed 1008: %d); ping flood frames %d (closed 1008: %d); lurkers %d (closed 1008: %d); never sending a byte %d (closed: %d); never-reading %d joined, %d dropped; oversize %d sent, closed 1009: %d; garbage connections %d, error frames %d; taken names %d tried, %d refused, %d joined; churn joins %d, resets %d, half-open %d, taken back %d\n",
		a.FloodFrames, a.FloodClosed, a.PingFrames, a.PingClosed, a.Lurkers, a.LurkersClosed, a.TCPIdle, a.TCPIdleClosed, a.DeafJoined, a.DeafDropped, a.OversizeSent, a.OversizeClosed, a.GarbageSent, a.GarbageErrors,
		a.TakenAttempts, a.TakenRefused, a.TakenJoined, a.ChurnJoins, a.ChurnResets, a.ChurnHalfOpen, a.ChurnResumed)
	fmt.Fprintf(w, "pending connections (not yet upgraded): at most %d in the samples, bound %d\n", maxPending(r.Samples), soakMaxPending)
	fmt.Fprintf(w, "after everyone left: %d sessions, %d away, %d rooms, %d KiB of kept frames\n", r.After.Sessions, r.After.Away, r.After.Rooms, r.After.KeptKiB)
	fmt.Fprintf(w, "goroutines: baseline %d, after everyone left %d; Go heap in use %d -> %d KiB, stacks %d -> %d KiB\n",
		r.Baseline.Goroutines, r.After.Goroutines, r.Baseline.HeapKiB, r.After.HeapKiB, r.Baseline.StackKiB, r.After.StackKiB)
	fmt.Fprintf(w, "RSS (heap and stacks): cold %.1f MiB, baseline after warm-up %.1f MiB, after everyone left %.1f MiB; with code pages: %.1f, %.1f, %.1f MiB; peak sample %.1f MiB\n",
		float64(r.Cold.AnonKiB)/1024, float64(r.Baseline.AnonKiB)/1024, float64(r.After.AnonKiB)/1024,
		float64(r.Cold.RSSKiB)/1024, float64(r.Baseline.RSSKiB)/1024, float64(r.After.RSSKiB)/1024, float64(peakRSS(r.Samples))/1024)
}

func maxPending(s []Sample) int {
	m := 0
	for _, x := range s {
		m = max(m, x.Pending)
	}
	return m
}

func peakRSS(s []Sample) int64 {
	var m int64
	for _, x := range s {
		m = max(m, x.RSSKiB)
	}
	return m
}
