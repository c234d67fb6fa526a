package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
)

func printReport(w io.Writer, r *Report) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "Burst fan-out (N clients in one room, each sends K back to back; envelope of B bytes: 150 unpadded, 512 padded)")
	fmt.Fprintln(tw, "N\tK\tB\tframe B\twire B/deliv\tdeliveries\tdeliv/s\tMB/s\tserver µs/deliv\tpeak RSS MiB\traw batched/s\thub/raw\tlost\tdup\tcorrupt\tload1\tsteal%\t")
	for _, b := range r.Burst {
		ratio := 0.0
		if b.RawBatchedPerSec > 0 {
			ratio = b.DeliveriesPerSec / b.RawBatchedPerSec
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%.0f\t%d\t%.0f\t%.0f\t%.2f\t%.1f\t%.0f\t%.0f%%\t%d\t%d\t%d\t%.2f\t%.1f\t\n",
			b.Clients, b.PerSender, b.BodyBytes, b.FrameBytes, b.WireBytesPerMsg, b.Counts.Delivered, b.DeliveriesPerSec,
			b.DeliveriesPerSec*float64(b.FrameBytes)/1e6, b.ServerNsPerDeliv/1000,
			float64(b.Server.PeakRSSKiB)/1024, b.RawBatchedPerSec, 100*ratio,
			b.Counts.Lost, b.Counts.Duplicated, b.Counts.Corrupt, b.Load.LoadAvg1, b.Load.StealPct)
	}
	tw.Flush()
	printTargets(w, r.Burst)

	fmt.Fprintln(w, "\nPaced latency (send to delivery)")
	fmt.Fprintln(tw, "N\tmsg/s\tseconds\tp50 ms\tp99 ms\tmax ms\tdeliveries\tlost\tdup\tcorrupt\tserver CPU s\tload1\tsteal%\t")
	for _, p := range r.Paced {
		fmt.Fprintf(tw, "%d\t%d\t%.0f\t%.3f\t%.3f\t%.3f\t%d\t%d\t%d\t%d\t%.2f\t%.2f\t%.1f\t\n",
			p.Clients, p.Rate, p.Seconds, p.P50Ms, p.P99Ms, p.MaxMs, p.Counts.Delivered,
			p.Counts.Lost, p.Counts.Duplicated, p.Counts.Corrupt, p.Server.CPUSeconds, p.Load.LoadAvg1, p.Load.StealPct)
	}
	tw.Flush()

	if len(r.Idle) > 0 {
		fmt.Fprintln(w, "\nIdle memory (joined connections doing nothing; fresh server each)")
		fmt.Fprintln(tw, "conns\trooms\tRSS before MiB\tRSS after MiB\tKiB/conn\t")
		for _, i := range r.Idle {
			fmt.Fprintf(tw, "%d\t%d\t%.1f\t%.1f\t%.1f\t\n", i.Conns, i.Rooms, float64(i.RSSBefore)/1024, float64(i.RSSAfter)/1024, i.KiBPerConn)
		}
		tw.Flush()
	}

	if len(r.Window) > 0 {
		fmt.Fprintln(w, "\nResume window (rooms keeping their recent frames at the cap; fresh server)")
		fmt.Fprintln(tw, "rooms\tsent/room\tenvelope B\tcap KiB/room\twindow s\tRSS before MiB\tRSS after MiB\tKiB/room\t")
		for _, x := range r.Window {
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%.0f\t%.1f\t%.1f\t%.0f\t\n", x.Rooms, x.SentPerRoom, x.BodyBytes, x.CapBytes>>10, x.WindowSeconds,
				float64(x.RSSBefore)/1024, float64(x.RSSAfter)/1024, x.KiBPerRoom)
		}
		tw.Flush()
	}

	printCluster(w, r.Cluster)

	fmt.Fprintln(w, "\nBytes on the wire per delivery, by envelope size (the page pads to these buckets)")
	fmt.Fprintln(tw, "envelope B\tbase64 B\tframe B (hub to member)\tframe B (member to hub)\t")
	for _, n := range envelopeSizes() {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t\n", n, (n+2)/3*4, wsFrameBytes(frameSize(n)), clientFrameBytes(n))
	}
	tw.Flush()

	fmt.Fprintln(w, "\nRaw ceiling (one writer, N loopback TCP readers, hub-sized records)")
	fmt.Fprintln(tw, "readers\trecord bytes\trecords/write\trecords\trecords/s\t")
	for _, x := range r.Raw {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%.0f\t\n", x.Readers, x.RecordBytes, x.RecordsPerWrite, x.Records, x.RecordsPerSec)
	}
	tw.Flush()
}

// envelopeSizes are an unpadded short message's and the page's buckets.
func envelopeSizes() []int {
	out := []int{bodyBytes}
	for n := paddedBytes; n <= maxBody; n *= 2 {
		out = append(out, n)
	}
	return out
}

// clientFrameBytes is a member's msg frame for an n-byte envelope, masked
// as clients send them (4 bytes of mask).
func clientFrameBytes(n int) int {
	return wsFrameBytes(len(`{"v":2,"type":"msg","body":""}`)+(n+2)/3*4) + 4
}

// The fan-out targets at N = targetClients: figures to compare, printed
// as met or not, never a gate (the machine is shared and noisy).
const (
	targetClients     = 200
	targetNsPerDeliv  = 1000 // server CPU per delivery
	targetRawFraction = 0.30 // of the same machine's batched raw ceiling
	targetRSSKiB      = 64 << 10
)

func printTargets(w io.Writer, burst []Burst) {
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "not met"
	}
	for _, b := range burst {
		if b.Clients != targetClients {
			continue
		}
		ratio := 0.0
		if b.RawBatchedPerSec > 0 {
			ratio = b.DeliveriesPerSec / b.RawBatchedPerSec
		}
		fmt.Fprintf(w, "targets at N=%d, B=%d: server CPU %.2f µs/delivery (≤ %.1f: %s), %.0f%% of raw (≥ %.0f%%: %s), peak RSS %.1f MiB (≤ %d: %s); figures, not a gate\n",
			b.Clients, b.BodyBytes,
			b.ServerNsPerDeliv/1000, float64(targetNsPerDeliv)/1000, met(b.ServerNsPerDeliv <= targetNsPerDeliv),
			100*ratio, 100*targetRawFraction, met(ratio >= targetRawFraction),
			float64(b.Server.PeakRSSKiB)/1024, targetRSSKiB>>10, met(b.Server.PeakRSSKiB <= targetRSSKiB))
	}
}
