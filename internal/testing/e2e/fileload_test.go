package e2e

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onionchat/onionchat/hub"
	"github.com/onionchat/onionchat/internal/testing/wstest"
)

// rssKiB reads a process's resident set size.
func rssKiB(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return -1
}

// TestTenFilesAtOnce: in a room of 20, 10 members send a 3 MiB file each
// at the same time, as the page does: bulk frames of the largest envelope
// (32 KiB, 43,787 bytes on the wire) at the default byte rate. Every
// chunk reaches every other member, nobody is dropped as slow, and the
// server's memory stays within its queue bounds (each member's send
// queue is at most hub.send_queue_bytes); its peak is printed.
func TestTenFilesAtOnce(t *testing.T) {
	const members, senders, fileBytes = 20, 10, 3 << 20
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	must(t, os.WriteFile(cfg, []byte("mode = \"local\"\n[local]\nlisten = \"127.0.0.1:0\"\n[hub]\nmax_conns_per_peer = 100\njoin_rate = 1000.0\njoin_burst = 1000\n"), 0o600))
	p := Start(t, "--config", cfg, "--data-dir", filepath.Join(dir, "data"))
	pid := p.Cmd.Process.Pid
	room := "ten files"
	cs := make([]*wstest.Client, members)
	for i := range cs {
		cs[i] = wstest.DialJoin(t, p.URL, room, fmt.Sprint("m", i))
	}
	time.Sleep(500 * time.Millisecond)
	base := rssKiB(pid)

	// Each chunk: the base64 of a 32 KiB envelope (random bytes: the hub
	// sees only base64), tagged with its sender and index.
	raw := make([]byte, 32768)
	for i := range raw {
		raw[i] = byte(rand.N(256))
	}
	body := base64.StdEncoding.EncodeToString(raw)
	chunks := fileBytes / 31744
	perFrame := time.Duration(float64(len(body)+100) / float64(hub.DefaultByteRate) * float64(time.Second))

	var wg sync.WaitGroup
	got := make([][]int, members) // got[receiver][sender] chunks
	errs := make(chan error, members)
	done := make(chan struct{})
	for r := range members {
		got[r] = make([]int, members)
		wg.Go(func() {
			want := chunks * senders
			if r < senders {
				want -= chunks
			}
			for n := 0; n < want; {
				// Raw reads: decoding 20 members' share of 36 MB/s of
				// JSON would make the test, not the server, the slow
				// reader (under -race, on two loaded cores).
				b, err := readRaw(cs[r], 60*time.Second)
				if err != nil {
					errs <- fmt.Errorf("m%d after %d chunks: %v", r, n, err)
					return
				}
				if s, ok := bulkFrom(b, len(body)); ok {
					got[r][s]++
					n++
				}
			}
		})
	}
	peakc := make(chan int64)
	go func() {
		var peak int64
		for {
			select {
			case <-done:
				peakc <- peak
				return
			case <-time.After(200 * time.Millisecond):
				peak = max(peak, rssKiB(pid))
			}
		}
	}()
	start := time.Now()
	var send sync.WaitGroup
	for s := range senders {
		send.Go(func() {
			// Paced as the page paces: never faster than the byte
			// rate, and no catching up in a burst after a stall.
			next := start
			for range chunks {
				cs[s].Send(map[string]any{"v": 2, "type": "msg", "body": body, "bulk": true})
				next = next.Add(perFrame)
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				} else {
					next = time.Now()
				}
			}
		})
	}
	send.Wait()
	wg.Wait()
	close(done)
	peak := <-peakc
	took := time.Since(start)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for r := range members {
		for s := range senders {
			if s != r && got[r][s] != chunks {
				t.Errorf("m%d got %d of m%d's %d chunks", r, got[r][s], s, chunks)
			}
		}
	}
	// Each member's queue holds at most send_queue_bytes; 20 members.
	bound := base + int64(members)*hub.DefaultSendQueueBytes/1024
	if peak > bound {
		t.Errorf("server RSS peaked at %d KiB: over its queue bounds (%d KiB before, + %d members x %d KiB)", peak, base, members, hub.DefaultSendQueueBytes/1024)
	}
	t.Logf("10 files of %d MiB at once, to a room of %d (%d chunks, %.1f MB on the wire, from each sender) in %v: server RSS %.1f MiB before, %.1f MiB at its peak (queue bound %.1f MiB)",
		fileBytes>>20, members, chunks, float64(chunks*len(body))/1e6, took.Round(100*time.Millisecond), float64(base)/1024, float64(peak)/1024, float64(bound)/1024)
}

// readRaw returns the next text frame's bytes, undecoded.
func readRaw(c *wstest.Client, d time.Duration) ([]byte, error) {
	c.SetReadDeadline(time.Now().Add(d))
	_, b, err := c.ReadMessage()
	return b, err
}

// bulkFrom reports whether b is a bulk frame from member "m<s>" carrying
// a body of bodyLen base64 characters, as the hub lays it out
// (hub.bulkFrame): {..."from":"m3","body":"...","bulk":true}.
func bulkFrom(b []byte, bodyLen int) (s int, ok bool) {
	if !bytes.HasSuffix(b, []byte(`","bulk":true}`)) {
		return 0, false
	}
	_, rest, found := bytes.Cut(b, []byte(`"from":"m`))
	if !found {
		return 0, false
	}
	num, rest, found := bytes.Cut(rest, []byte(`","body":"`))
	if !found || len(rest) != bodyLen+len(`","bulk":true}`) {
		return 0, false
	}
	s, err := strconv.Atoi(string(num))
	return s, err == nil
}
