package bench

import (
	"os"
	"strconv"
	"strings"

	"github.com/onionchat/onionchat/internal/testing/procfs"
)

// procCPU returns the CPU seconds (user + system) a process has used.
func procCPU(pid int) float64 {
	st, err := procfs.ReadStat(pid)
	if err != nil {
		return 0
	}
	return st.CPUSeconds()
}

// procRSS returns a process's resident and peak resident set sizes, KiB.
func procRSS(pid int) (rss, peak int64) {
	m := procStatus(pid)
	return m["VmRSS"], m["VmHWM"]
}

// procAnon returns a process's anonymous resident memory, KiB: its heap
// and stacks, without the program's own code pages (file-backed, shared,
// reclaimable by the kernel at any time).
func procAnon(pid int) int64 { return procStatus(pid)["RssAnon"] }

func procStatus(pid int) map[string]int64 {
	m := map[string]int64{}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return m
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err == nil {
			m[k] = n
		}
	}
	return m
}

// procWrote returns the bytes a process has written (to sockets, among
// others): wchar of /proc/PID/io.
func procWrote(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "wchar: "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// resetPeak resets a process's peak RSS (VmHWM) to its current RSS.
func resetPeak(pid int) {
	os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0)
}

type cpuTimes struct{ total, idle, steal float64 }

func readCPUTimes() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var t cpuTimes
	for i, x := range f[1:] {
		v, _ := strconv.ParseFloat(x, 64)
		t.total += v
		switch i {
		case 3, 4: // idle, iowait
			t.idle += v
		case 7:
			t.steal = v
		}
	}
	return t
}

func loadAvg1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// meter measures the server and the machine over one scenario.
type meter struct {
	pid    int
	cpu0   float64
	wrote0 int64
	st0    cpuTimes
}

func startMeter(s *server) *meter {
	m := &meter{st0: readCPUTimes()}
	if s != nil {
		m.pid = s.cmd.Process.Pid
		resetPeak(m.pid)
		m.cpu0 = procCPU(m.pid)
		m.wrote0 = procWrote(m.pid)
	}
	return m
}

func (m *meter) stop() (Server, Load) {
	var sv Server
	if m.pid != 0 {
		sv.CPUSeconds = procCPU(m.pid) - m.cpu0
		sv.WroteBytes = procWrote(m.pid) - m.wrote0
		sv.RSSKiB, sv.PeakRSSKiB = procRSS(m.pid)
	}
	st := readCPUTimes()
	d := st.total - m.st0.total
	l := Load{LoadAvg1: loadAvg1()}
	if d > 0 {
		l.StealPct = 100 * (st.steal - m.st0.steal) / d
		l.IdlePct = 100 * (st.idle - m.st0.idle) / d
	}
	return sv, l
}
