package tortest

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestOnionServiceEndToEnd starts a network, an onion service in front of
// an HTTP server on 127.0.0.1, and fetches its page through the network's
// client and through a second client tor.
func TestOnionServiceEndToEnd(t *testing.T) {
	// Registered first, so run last: after every tor is stopped, nothing
	// of this package (process waiters, HTTP connections) may be left.
	t.Cleanup(func() { goleak.VerifyNone(t) })
	t0 := time.Now()
	n := Start(t)
	up := time.Since(t0)

	lines := n.TorrcLines()
	auths := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "DirAuthority ") {
			auths++
		}
	}
	if auths != numAuthorities || !slices.Contains(lines, "TestingTorNetwork 1") || !slices.Contains(lines, "UseDefaultFallbackDirs 0") {
		t.Fatalf("TorrcLines: %q", lines)
	}
	if err := n.CheckTorrc(append(lines, "SocksPort 127.0.0.1:auto")); err != nil {
		t.Fatalf("TorrcLines fail the check: %v", err)
	}
	if a := n.SOCKSAddr(); !strings.HasPrefix(a, "127.0.0.1:") {
		t.Fatalf("SOCKSAddr %q", a)
	}

	const page = "hello from the onion"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, page)
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)

	hsDir := filepath.Join(t.TempDir(), "hs")
	svc := n.StartTor(t, "HiddenServiceDir "+hsDir, "HiddenServicePort 80 "+l.Addr().String())
	host, err := svc.WaitFile(filepath.Join(hsDir, "hostname"), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(host, ".onion") || len(host) != 56+len(".onion") {
		t.Fatalf("hostname %q is not a v3 onion address", host)
	}
	status, body, err := n.Get("http://"+host+"/", 120*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK || string(body) != page {
		t.Fatalf("got %d %q, want 200 %q", status, body, page)
	}
	t.Logf("network up %v after Start was called; first fetch through the onion %v after", up.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))

	// A second client, as a test of client authorization would start.
	t1 := time.Now()
	c2 := n.StartTor(t)
	if err := c2.WaitBootstrapped(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	status, body, err = c2.Get("http://"+host+"/", 120*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK || string(body) != page {
		t.Fatalf("second client: got %d %q, want 200 %q", status, body, page)
	}
	t.Logf("second client: started, bootstrapped and fetched in %v", time.Since(t1).Round(time.Millisecond))

	if err := n.NewNym(); err != nil {
		t.Fatalf("NewNym: %v", err)
	}
}
