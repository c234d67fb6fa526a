package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// Cluster compares, in the same run, one instance with two instances
// sharing rooms over NATS (issue 16), clients spread over both: the same
// burst and the same paced load on each. Only lost, duplicated or corrupt
// deliveries fail a run; the rates and latencies are figures, printed
// with their targets (at least half the single instance's rate, a p99 at
// most 2 ms above it).
type Cluster struct {
	Single      Burst   `json:"single_burst"`
	Spread      Burst   `json:"cluster_burst"`
	SinglePaced Paced   `json:"single_paced"`
	SpreadPaced Paced   `json:"cluster_paced"`
	RateRatio   float64 `json:"rate_ratio"`   // cluster deliveries/s over the single instance's
	AddedP99Ms  float64 `json:"added_p99_ms"` // cluster p99 minus the single instance's
}

// OK reports whether nothing was lost, duplicated or corrupt.
func (c Cluster) OK() bool {
	return c.Single.Counts.OK() && c.Spread.Counts.OK() && c.SinglePaced.Counts.OK() && c.SpreadPaced.Counts.OK()
}

// clusterConfig is benchConfig for an instance whose NATS routes listen
// on 127.0.0.1:port and reach the other instance's, with the links'
// password in the file pw.
func clusterConfig(port, peer int, pw string) string {
	return benchConfig + fmt.Sprintf("[cluster]\nlisten = \"127.0.0.1:%d\"\npeers = [\"127.0.0.1:%d\"]\nuser = \"bench\"\npassword_file = %q\n", port, peer, pw)
}

func freePorts2() (int, int, error) {
	var ports [2]int
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, err
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		defer l.Close()
	}
	return ports[0], ports[1], nil
}

// clusterRun starts two instances of bin linked over NATS on loopback,
// and measures them against single (at url) with n clients, k messages
// each, and the paced load for pacedFor.
func clusterRun(ctx context.Context, bin string, single *server, url string, n, k int, pacedFor time.Duration) (Cluster, error) {
	var r Cluster
	pa, pb, err := freePorts2()
	if err != nil {
		return r, fmt.Errorf("ports: %w", err)
	}
	dir, err := os.MkdirTemp("", "onionchat-bench-links")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	pw := filepath.Join(dir, "links.password")
	if err := os.WriteFile(pw, []byte("bench links\n"), 0o600); err != nil {
		return r, err
	}
	a, err := startServer(ctx, bin, clusterConfig(pa, pb, pw), nil, nil)
	if err != nil {
		return r, err
	}
	defer a.stop()
	b, err := startServer(ctx, bin, clusterConfig(pb, pa, pw), nil, nil)
	if err != nil {
		return r, err
	}
	defer b.stop()
	if err := waitLinked(ctx, a.url, b.url); err != nil {
		return r, err
	}
	spread := []string{a.url, b.url}
	if r.Single, err = burst(ctx, []string{url}, single, n, k, paddedBytes); err != nil {
		return r, err
	}
	if r.Spread, err = burst(ctx, spread, nil, n, k, paddedBytes); err != nil {
		return r, err
	}
	if r.SinglePaced, err = paced(ctx, []string{url}, single, 50, 200, pacedFor); err != nil {
		return r, err
	}
	if r.SpreadPaced, err = paced(ctx, spread, nil, 50, 200, pacedFor); err != nil {
		return r, err
	}
	if r.Single.DeliveriesPerSec > 0 {
		r.RateRatio = r.Spread.DeliveriesPerSec / r.Single.DeliveriesPerSec
	}
	r.AddedP99Ms = r.SpreadPaced.P99Ms - r.SinglePaced.P99Ms
	return r, nil
}

// waitLinked waits until a name taken on a is refused on b: the two
// instances hear each other.
func waitLinked(ctx context.Context, a, b string) error {
	room := fmt.Sprintf("link-%d", runID)
	first, err := dial(ctx, a, room, 0)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	defer first.ws.Close()
	var last error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		c, err := dial(ctx, b, room, 0)
		if err == nil {
			c.ws.Close()
			last = fmt.Errorf("a name taken on one instance was free on the other")
			time.Sleep(time.Second) // its session leaves before the next try
			continue
		}
		if strings.Contains(err.Error(), "name_taken") {
			return nil
		}
		last = err
	}
	return fmt.Errorf("cluster: the two instances did not link within 30s: %v", last)
}

func printCluster(w io.Writer, c []Cluster) {
	if len(c) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "\nCluster: two instances sharing rooms over NATS (loopback), clients spread over both, against one instance in the same run")
	fmt.Fprintln(tw, "\tN\tK\tdeliv/s\tpaced p50 ms\tpaced p99 ms\tpaced max ms\tlost\tdup\tcorrupt\t")
	for _, x := range c {
		for _, row := range []struct {
			name string
			b    Burst
			p    Paced
		}{{"one instance", x.Single, x.SinglePaced}, {"two instances", x.Spread, x.SpreadPaced}} {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.3f\t%.3f\t%.3f\t%d\t%d\t%d\t\n", row.name, row.b.Clients, row.b.PerSender, row.b.DeliveriesPerSec,
				row.p.P50Ms, row.p.P99Ms, row.p.MaxMs, row.b.Counts.Lost+row.p.Counts.Lost, row.b.Counts.Duplicated+row.p.Counts.Duplicated,
				row.b.Counts.Corrupt+row.p.Counts.Corrupt)
		}
		tw.Flush()
		fmt.Fprintf(w, "cluster rate %.0f%% of one instance (target at least 50%%); p99 %+.3f ms (target at most +2 ms); figures, not a gate\n",
			100*x.RateRatio, x.AddedP99Ms)
	}
}
