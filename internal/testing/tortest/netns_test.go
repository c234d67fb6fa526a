package tortest

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNetnsIsolated checks, in the namespace MainInNetns made, that only
// loopback exists and is up, and that an outside address cannot be
// reached: the dial fails at once, with no route to leave by.
func TestNetnsIsolated(t *testing.T) {
	if !Isolated() {
		t.Skip("not in a network namespace: MainInNetns could not make one here")
	}
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 {
			t.Fatalf("interface %s besides loopback", i.Name)
		}
		if i.Flags&net.FlagUp == 0 {
			t.Fatalf("loopback %s is down", i.Name)
		}
	}
	// Safe only because of the check above: with no interface but lo
	// there is no route, and connect fails before any packet is made.
	// 192.0.2.1 is TEST-NET-1, reserved for documentation.
	_, err = net.DialTimeout("tcp", "192.0.2.1:80", 2*time.Second)
	if !errors.Is(err, syscall.ENETUNREACH) {
		t.Fatalf("dial 192.0.2.1:80 from the namespace: got %v, want network unreachable", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("loopback unusable: %v", err)
	}
	l.Close()
}

// TestMainInNetnsPassesThrough runs this test binary as go test does (the
// namespace marker removed) for a helper test that passes or fails, and
// checks that MainInNetns forwards the -test.* flags (-test.run picks the
// helper, -test.v prints its result line) and passes its output and exit
// status back.
func TestMainInNetnsPassesThrough(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("network namespaces are Linux only")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, EnvNetns+"=") {
			env = append(env, e)
		}
	}
	for _, tc := range []struct {
		mode     string
		wantCode int
		want     string
	}{
		{"pass", 0, "--- PASS: TestNetnsHelper"},
		{"fail", 1, "--- FAIL: TestNetnsHelper"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, exe, "-test.run=^TestNetnsHelper$", "-test.v", "-test.count=1")
		cmd.Env = append(env, "TORTEST_HELPER="+tc.mode)
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		cancel()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s: %v", tc.mode, err)
		}
		if code != tc.wantCode || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: exit status %d, want %d; output:\n%s", tc.mode, code, tc.wantCode, out)
		}
		if Isolated() && !strings.Contains(string(out), "helper isolated=true") {
			t.Errorf("%s: the helper did not run in a namespace; output:\n%s", tc.mode, out)
		}
		if strings.Contains(string(out), "TestOnionServiceEndToEnd") {
			t.Errorf("%s: -test.run was not passed on; output:\n%s", tc.mode, out)
		}
	}
}

// TestNetnsHelper is run by TestMainInNetnsPassesThrough only.
func TestNetnsHelper(t *testing.T) {
	mode := os.Getenv("TORTEST_HELPER")
	if mode == "" {
		t.Skip("helper of TestMainInNetnsPassesThrough")
	}
	t.Logf("helper isolated=%v", Isolated())
	if mode == "fail" {
		t.Error("failing on purpose")
	}
}
