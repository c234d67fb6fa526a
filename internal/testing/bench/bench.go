// Package bench is onionchat's load generator, the onionchat-bench
// command's: it starts a real onionchat (the appliance's binary, in local
// mode, as a separate process; Build makes one) or targets one,
// and measures burst fan-out, paced latency and idle memory over loopback,
// beside the raw ceiling of the same machine's TCP stack measured in the
// same run. Every delivery is checked (sender, sequence, checksum); lost,
// duplicated and corrupt deliveries are counted. Server CPU and RSS come
// from /proc, with the machine's load and steal recorded beside each run.
//
// It is a tool, not part of the server: nothing in hub or web knows it,
// and the appliance's binary does not carry it (cmd/onionchat's tests
// check that it is not linked in).
package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Options configures a run.
type Options struct {
	Short  bool      // a quick run of every scenario, for the test command (checks delivery, not speed)
	Binary string    // the onionchat binary to start (see Build); unused with Target
	Target string    // URL of a running onionchat instead (server CPU and RSS then unknown)
	JSON   string    // write the report here as JSON too; "" means don't
	Out    io.Writer // the table; nil means os.Stdout
}

// Report is everything a run measured.
type Report struct {
	Time    time.Time `json:"time"`
	Machine Machine   `json:"machine"`
	Short   bool      `json:"short"`
	Burst   []Burst   `json:"burst"`
	Paced   []Paced   `json:"paced"`
	Idle    []Idle    `json:"idle"`
	Window  []Window  `json:"window"`
	Cluster []Cluster `json:"cluster"`
	Raw     []Raw     `json:"raw"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
}

// Load is the machine's state around a scenario.
type Load struct {
	LoadAvg1 float64 `json:"loadavg1"` // at the end
	StealPct float64 `json:"steal_pct"`
	IdlePct  float64 `json:"idle_pct"`
}

// Server is what /proc says about the server process during a scenario.
type Server struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	WroteBytes int64   `json:"wrote_bytes"`
	PeakRSSKiB int64   `json:"peak_rss_kib"`
	RSSKiB     int64   `json:"rss_kib"`
}

// Counts are checked deliveries.
type Counts struct {
	Expected   int64 `json:"expected"`
	Delivered  int64 `json:"delivered"`
	Lost       int64 `json:"lost"`
	Duplicated int64 `json:"duplicated"`
	Corrupt    int64 `json:"corrupt"`
}

// OK reports whether every expected delivery arrived once and intact.
func (c Counts) OK() bool {
	return c.Lost == 0 && c.Duplicated == 0 && c.Corrupt == 0 && c.Delivered == c.Expected
}

// add adds one receiver's counts, of which want were expected, to c.
func (c *Counts) add(k Counts, want int64) {
	c.Expected += want
	c.Delivered += k.Delivered
	c.Lost += k.Lost
	c.Duplicated += k.Duplicated
	c.Corrupt += k.Corrupt
}

// percentiles sorts lat and returns its 50th and 99th percentiles and its
// maximum in milliseconds (zeros if lat is empty).
func percentiles(lat []time.Duration) (p50, p99, max float64) {
	if len(lat) == 0 {
		return 0, 0, 0
	}
	slices.Sort(lat)
	ms := func(p int) float64 { return float64(lat[min(len(lat)*p/100, len(lat)-1)].Microseconds()) / 1000 }
	return ms(50), ms(99), ms(100)
}

// Run starts (or targets) the server, runs every scenario and prints the
// table. It returns the report, and an error if any delivery was lost,
// duplicated or corrupt.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	rep := &Report{Time: time.Now().UTC(), Machine: machine(), Short: o.Short}
	url := o.Target
	var srv *server
	if url == "" {
		var err error
		srv, err = startServer(ctx, o.Binary, benchConfig, nil, nil)
		if err != nil {
			return nil, err
		}
		defer srv.stop()
		url = srv.url
	}
	fmt.Fprintf(o.Out, "onionchat bench: %d CPUs (%s), %s, %s; server %s\n\n",
		rep.Machine.CPUs, rep.Machine.CPUModel, rep.Machine.Kernel, rep.Machine.Go, url)

	sizes := []struct{ n, k int }{{10, 1000}, {50, 200}, {200, 50}}
	pacedFor, idleNs := 10*time.Second, []idleCase{{1000, 20}, {10000, 200}, {200, 20}}
	if o.Short {
		sizes = []struct{ n, k int }{{10, 100}, {50, 20}, {200, 5}}
		pacedFor, idleNs = 2*time.Second, []idleCase{{200, 20}, {1000, 20}}
	}
	var failed []string
	for _, s := range sizes {
		// A short chat message's envelope as it was (unpadded) and as the
		// page now sends it (padded to the smallest bucket).
		for _, body := range []int{bodyBytes, paddedBytes} {
			raw := rawCeiling(ctx, s.n, wsFrameBytes(frameSize(body)), s.n*(s.n-1)*s.k)
			rep.Raw = append(rep.Raw, raw...)
			b, err := burst(ctx, []string{url}, srv, s.n, s.k, body)
			if err != nil {
				return rep, fmt.Errorf("bench: burst n=%d: %w", s.n, err)
			}
			b.RawBatchedPerSec = raw[1].RecordsPerSec
			rep.Burst = append(rep.Burst, b)
			if !b.Counts.OK() {
				failed = append(failed, fmt.Sprintf("burst n=%d body=%d: %+v", s.n, body, b.Counts))
			}
		}
	}
	p, err := paced(ctx, []string{url}, srv, 50, 200, pacedFor)
	if err != nil {
		return rep, fmt.Errorf("bench: paced: %w", err)
	}
	rep.Paced = append(rep.Paced, p)
	if !p.Counts.OK() {
		failed = append(failed, fmt.Sprintf("paced: %+v", p.Counts))
	}
	for _, ic := range idleNs {
		if srv == nil {
			break // RSS of a server we did not start is unknown
		}
		i, err := idle(ctx, o.Binary, ic)
		if err != nil {
			return rep, fmt.Errorf("bench: idle n=%d: %w", ic.n, err)
		}
		rep.Idle = append(rep.Idle, i)
	}
	if srv != nil {
		rooms := 20
		if o.Short {
			rooms = 5
		}
		w, err := window(ctx, o.Binary, rooms)
		if err != nil {
			return rep, fmt.Errorf("bench: window: %w", err)
		}
		rep.Window = append(rep.Window, w)
		if !w.Counts.OK() {
			failed = append(failed, fmt.Sprintf("window: %+v", w.Counts))
		}
	}
	if srv != nil {
		n, k := 50, 200
		if o.Short {
			k = 20
		}
		c, err := clusterRun(ctx, o.Binary, srv, url, n, k, pacedFor)
		if err != nil {
			return rep, fmt.Errorf("bench: cluster: %w", err)
		}
		rep.Cluster = append(rep.Cluster, c)
		if !c.OK() {
			failed = append(failed, fmt.Sprintf("cluster: %+v %+v %+v %+v", c.Single.Counts, c.Spread.Counts, c.SinglePaced.Counts, c.SpreadPaced.Counts))
		}
	}
	printReport(o.Out, rep)
	if o.JSON != "" {
		if err := writeJSON(o.JSON, rep); err != nil {
			return rep, err
		}
	}
	if len(failed) > 0 {
		return rep, fmt.Errorf("bench: deliveries lost, duplicated or corrupt: %s", strings.Join(failed, "; "))
	}
	return rep, nil
}

// benchConfig keeps every limit on, sized for the load: bench clients all
// come from 127.0.0.1 and send bursts back to back, so a member may have
// all 9,000 frames of a burst (7 MB of padded ones) queued at once,
// which a page at the default rate never could.
const benchConfig = `mode = "local"
[hub]
rate = 100000.0
burst = 100000
max_conns = 20000
max_conns_per_peer = 20000
join_rate = 100000.0
join_burst = 100000
send_queue = 16384
send_queue_bytes = 16777216
byte_rate = 1073741824
max_rooms = 1000
max_members = 1000
`

type server struct {
	cmd *exec.Cmd
	url string
	dir string
}

var servingRe = regexp.MustCompile(`Serving (http://\S+?)/?$`)

// startServer starts the onionchat binary bin in local mode with config,
// on 127.0.0.1 with a fresh data directory, and waits for the address it
// prints. env is added to this process's environment; onStderr, if not
// nil, sees each line the server writes to stderr.
func startServer(ctx context.Context, bin, config string, env []string, onStderr func(string)) (*server, error) {
	if bin == "" {
		return nil, errors.New("bench: no onionchat binary to start (see Build)")
	}
	dir, err := os.MkdirTemp("", "onionchat-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	cfg := filepath.Join(dir, "bench.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("bench: %w", err)
	}
	cmd := exec.Command(bin, "--config", cfg, "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"))
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("bench: %w", err)
	}
	var errOut io.Reader
	if onStderr != nil {
		if errOut, err = cmd.StderrPipe(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("bench: start %s: %w", bin, err)
	}
	s := &server{cmd: cmd, dir: dir}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := servingRe.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
	}()
	if errOut != nil {
		go func() {
			sc := bufio.NewScanner(errOut)
			for sc.Scan() {
				onStderr(sc.Text())
			}
		}()
	}
	select {
	case s.url = <-urls:
		return s, nil
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	s.stop()
	return nil, errors.New("bench: the server printed no address within 30s")
}

// stop stops the server by its PID: SIGTERM, then SIGKILL if it lingers.
func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(s.dir)
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	return m
}

func writeJSON(path string, v any) error {
	b, _ := json.MarshalIndent(v, "", "  ")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// Build builds the appliance, the module's cmd/onionchat, into dir and
// returns its path: the binary a run starts and measures. It needs the go
// command and the onionchat module (the working directory inside it).
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "onionchat")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/onionchat/onionchat/cmd/onionchat")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("bench: build onionchat (run this inside the onionchat module, or give the binary): %w", err)
	}
	return bin, nil
}
