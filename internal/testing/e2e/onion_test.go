package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/cretz/bine/control"
	"github.com/gorilla/websocket"
	"github.com/onionchat/onionchat/internal/testing/procfs"
	"github.com/onionchat/onionchat/internal/testing/tortest"
	"github.com/onionchat/onionchat/internal/testing/wstest"
	"github.com/onionchat/onionchat/onion"
)

// onionStartTimeout bounds a start in onion mode: tor bootstraps on the
// private network and publishes the descriptor.
const onionStartTimeout = 3 * time.Minute

// onionConfig writes a config for onion mode on net's private network.
// runtime is tor's working directory (short: it holds a unix socket).
func onionConfig(t *testing.T, n *tortest.Network, runtime string, hub string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("mode = \"onion\"\n[tor]\n")
	fmt.Fprintf(&b, "runtime_dir = %q\npublish_timeout = \"2m\"\nextra_torrc = [\n", runtime)
	for _, l := range n.TorrcLines() {
		fmt.Fprintf(&b, "  %q,\n", l)
	}
	b.WriteString("]\n")
	if hub != "" {
		b.WriteString("[hub]\n" + hub + "\n")
	}
	p := filepath.Join(t.TempDir(), "onion.toml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// shortDir makes a directory with a path short enough for a unix socket.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "oc")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o700)
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func startOnion(t *testing.T, args ...string) *Proc {
	t.Helper()
	old := StartTimeout
	StartTimeout = onionStartTimeout
	defer func() { StartTimeout = old }()
	p := Start(t, args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("onionchat's output:\n%s", p.Output())
		}
	})
	return p
}

// socksDialer dials WebSockets through a tor client's SOCKS port. The
// SOCKS user name picks the circuit: tor isolates streams by SOCKS
// credentials, so each name gets a circuit of its own.
func socksDialer(socks, user string) *websocket.Dialer {
	u := &url.URL{Scheme: "socks5", Host: socks, User: url.UserPassword(user, "x")}
	return &websocket.Dialer{Proxy: http.ProxyURL(u), HandshakeTimeout: 60 * time.Second}
}

func dialOnion(t *testing.T, d *websocket.Dialer, base string) *wstest.Client {
	t.Helper()
	var lastErr error
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		ws, _, err := d.Dial(wstest.WSURL(base), http.Header{"Origin": {strings.TrimSuffix(base, "/")}})
		if err == nil {
			return wstest.New(t, ws)
		}
		lastErr = err
	}
	t.Fatalf("dial %s through tor: %v", base, lastErr)
	return nil
}

// appTor connects to the control port of the tor that onionchat started:
// the unix socket in onionchat's runtime directory, runtime.
func appTor(t *testing.T, runtime string) *control.Conn {
	t.Helper()
	tc, err := textproto.Dial("unix", filepath.Join(runtime, onion.ControlSocket))
	if err != nil {
		t.Fatal(err)
	}
	c := control.NewConn(tc)
	if err := c.Authenticate(""); err != nil {
		t.Fatalf("authenticate to onionchat's tor: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// childTor returns the PID of onionchat's tor child.
func childTor(t *testing.T, parent int) int {
	t.Helper()
	for _, st := range procfs.All() {
		if st.PPID == parent && st.Comm == "tor" {
			return st.PID
		}
	}
	t.Fatalf("onionchat (pid %d) has no tor child", parent)
	return 0
}

// torChromium starts Chromium through the tor at socks, treating the
// onion service's plain-HTTP origin as secure, as Tor Browser does.
func torChromium(t *testing.T, socks, origin string) context.Context {
	return Chromium(t, chromedp.ProxyServer("socks5://"+socks), chromedp.Flag("unsafely-treat-insecure-origin-as-secure", origin))
}

// joinOnion opens u in alice's and bob's tabs, allowing for the circuits
// a first visit to an onion service builds, and joins them with pass.
func joinOnion(t *testing.T, u, pass string, alice, bob cdpTab) {
	t.Helper()
	for _, tab := range []cdpTab{alice, bob} {
		ctx, cancel := context.WithTimeout(tab.ctx, 90*time.Second)
		err := chromedp.Do(ctx, chromedp.Navigate(u))
		cancel()
		must(t, err)
	}
	join(t, alice, "", "alice", pass)
	join(t, bob, "", "bob", pass)
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// TestOnionMode runs the real binary in onion mode on a private Tor
// network: the page and chat through tor, the hardened torrc as the
// running tor reports it, limits per Tor circuit, a stable address across
// restarts, client authorization, an ephemeral address that leaves no
// key, Chromium through tor, and what happens when tor dies.
func TestOnionMode(t *testing.T) {
	top := t // the server outlives each subtest that restarts it
	net := tortest.Start(t)
	data := filepath.Join(t.TempDir(), "data")
	runtime := shortDir(t)
	cfg := onionConfig(t, net, runtime, "max_conns_per_peer = 2")
	start := time.Now()
	srv := startOnion(t, "--config", cfg, "--data-dir", data)
	addr := srv.URL
	if !strings.HasSuffix(addr, ".onion") || !strings.Contains(srv.Output(), "█") {
		t.Fatalf("no onion address with a QR code printed:\n%s", srv.Output())
	}
	status, body, err := net.Get(addr+"/", 90*time.Second)
	if err != nil || status != 200 || !strings.Contains(string(body), "onionchat") {
		t.Fatalf("GET %s through tor: %d %v", addr, status, err)
	}
	t.Logf("start to first fetch through tor: %v", time.Since(start).Round(100*time.Millisecond))
	for _, want := range []string{"Tor sandbox: on", "proof-of-work defence: on", "Onion service published in"} {
		if !strings.Contains(srv.Output(), want) {
			t.Errorf("start-up output lacks %q:\n%s", want, srv.Output())
		}
	}

	t.Run("chat through tor", func(t *testing.T) {
		a := dialOnion(t, socksDialer(net.SOCKSAddr(), "alice"), addr)
		b := dialOnion(t, socksDialer(net.SOCKSAddr(), "bob"), addr)
		wstest.Pair(a, b, "tor room")
		a.Says(b, "alice", "over tor")
	})

	t.Run("hardened tor config", func(t *testing.T) {
		c := appTor(t, runtime)
		want := map[string]string{
			"Sandbox": "1", "SafeLogging": "1", "AvoidDiskWrites": "1", "ClientOnly": "1",
			"SocksPort": "0", "MaxMemInQueues": "67108864",
		}
		for k, v := range want {
			kvs, err := c.GetConf(k)
			if err != nil || len(kvs) == 0 || kvs[0].Val != v {
				got := ""
				if len(kvs) > 0 {
					got = kvs[0].Val
				}
				t.Errorf("GETCONF %s = %q (%v), want %q", k, got, err, v)
			}
		}
		kvs, err := c.GetConf("HiddenServiceOptions")
		if err != nil {
			t.Fatal(err)
		}
		hs := map[string]string{}
		for _, kv := range kvs {
			hs[kv.Key] = kv.Val
		}
		for k, v := range map[string]string{
			"HiddenServiceEnableIntroDoSDefense": "1", "HiddenServicePoWDefensesEnabled": "1",
			"HiddenServiceMaxStreams": "32", "HiddenServiceMaxStreamsCloseCircuit": "1",
			"HiddenServiceExportCircuitID": "haproxy",
		} {
			if hs[k] != v {
				t.Errorf("%s = %q, want %q (all: %v)", k, hs[k], v, hs)
			}
		}
		if !strings.HasPrefix(hs["HiddenServicePort"], "80 unix:") {
			t.Errorf("HiddenServicePort %q, want a unix socket", hs["HiddenServicePort"])
		}
		// Onion mode opens no TCP listener of onionchat's own, and tor's
		// control port is the unix socket in the runtime directory.
		ln, _ := c.GetInfo("net/listeners/socks")
		if len(ln) > 0 && ln[0].Val != "" {
			t.Errorf("tor has a SOCKS listener: %v", ln[0].Val)
		}
		ln, err = c.GetInfo("net/listeners/control")
		if err != nil || len(ln) != 1 {
			t.Fatalf("GETINFO net/listeners/control: %v %v", ln, err)
		}
		if want := "unix:" + filepath.Join(runtime, onion.ControlSocket); strings.Trim(ln[0].Val, `"`) != want {
			t.Errorf("tor's control listeners: %s, want only %s", ln[0].Val, want)
		}
	})

	t.Run("limits count per circuit", func(t *testing.T) {
		// max_conns_per_peer = 2: two connections on one circuit, and the
		// third on it is refused, while another circuit is welcome.
		same := socksDialer(net.SOCKSAddr(), "carol")
		dialOnion(t, same, addr)
		dialOnion(t, same, addr)
		third := dialOnion(t, same, addr)
		third.ExpectError("too_many_conns")
		other := dialOnion(t, socksDialer(net.SOCKSAddr(), "dave"), addr)
		other.JoinOK("r", "dave")
	})

	t.Run("client authorization", func(t *testing.T) {
		// Friends' tors, each holding its client key for both services
		// of this test in a ClientOnionAuthDir of its own.
		aliceDir, bobDir := t.TempDir(), t.TempDir()
		os.Chmod(aliceDir, 0o700)
		os.Chmod(bobDir, 0o700)
		authorize := func(dataDir, name, dir string) {
			out, code := runBinary(t, "auth", "add", name, "--data-dir", dataDir)
			if code != 0 {
				t.Fatalf("auth add %s: %s", name, out)
			}
			line := lastLineWith(out, ":descriptor:x25519:")
			file := filepath.Join(dir, strings.SplitN(line, ":", 2)[0]+".auth_private")
			must(t, os.WriteFile(file, []byte(line+"\n"), 0o600))
		}

		// With tor's sandbox off, tor reloads added keys live: alice's
		// chat goes on while bob is added. Revoking bob is the attack: his
		// tor already holds the descriptor, and a v3 service checks no key
		// at introduction, so a reload that keeps the introduction points
		// keeps him in. onionchat must stop (exit 1, for systemd to
		// restart it), and the new tor, with new introduction points,
		// shut him out while his tor runs on, descriptor cached.
		liveData := filepath.Join(t.TempDir(), "data")
		authorize(liveData, "alice", aliceDir)
		liveRuntime := shortDir(t)
		liveCfg := onionConfig(t, net, liveRuntime, "")
		liveCfg = withTorOption(t, liveCfg, `sandbox = "off"`)
		live := startOnion(t, "--config", liveCfg, "--data-dir", liveData)
		aliceTor := net.StartTor(t, "ClientOnionAuthDir "+aliceDir)
		must(t, aliceTor.WaitBootstrapped(90*time.Second))
		if status, _, err := aliceTor.Get(live.URL+"/", 90*time.Second); err != nil || status != 200 {
			t.Fatalf("alice cannot reach the service with her key: %d %v", status, err)
		}
		if _, _, err := net.Client().Get(live.URL+"/", 15*time.Second); err == nil {
			t.Fatal("a tor without a client key reached a service with client authorization")
		}
		c := dialOnion(t, socksDialer(aliceTor.SOCKSAddr(), "alice"), live.URL)
		c.JoinOK("auth room", "alice")
		authorize(liveData, "bob", bobDir)
		waitFor(t, "tor to reload its client list", 30*time.Second, func() bool {
			return strings.Contains(live.Output(), "client authorization changed; tor reloaded it")
		})
		c.SendRaw([]byte(`{"v":2,"type":"ping","id":5}`))
		if f := c.Expect("pong"); f["id"] != float64(5) {
			t.Fatalf("the live chat broke when another client was added: %v", f)
		}
		bobTor := net.StartTor(t, "ClientOnionAuthDir "+bobDir)
		must(t, bobTor.WaitBootstrapped(90*time.Second))
		if status, _, err := bobTor.Get(live.URL+"/", 90*time.Second); err != nil || status != 200 {
			t.Fatalf("bob cannot reach the service with the key added while it ran: %d %v", status, err)
		}
		if out, code := runBinary(t, "auth", "remove", "bob", "--data-dir", liveData); code != 0 {
			t.Fatalf("auth remove bob: %s", out)
		}
		waitFor(t, "onionchat to act on bob's removal", 30*time.Second, func() bool {
			out := live.Output()
			return strings.Count(out, "tor reloaded it") > 1 || strings.Contains(out, "was removed or replaced")
		})
		if strings.Contains(live.Output(), "was removed or replaced") {
			if code := live.Wait(t, 30*time.Second); code == 0 {
				t.Fatalf("onionchat stopped for a revocation with exit 0: systemd would not restart it:\n%s", live.Output())
			}
			live = startOnion(t, "--config", liveCfg, "--data-dir", liveData) // as systemd does
		}
		if status, _, err := aliceTor.Get(live.URL+"/", 120*time.Second); err != nil || status != 200 {
			t.Fatalf("alice cannot reach the service after bob's removal: %d %v", status, err)
		}
		// bob's tor keeps its descriptor (no NEWNYM): each try is a new
		// circuit of its own, as a new tab of his Tor Browser would be.
		for i := range 3 {
			status, err := freshGet(bobTor, live.URL+"/", fmt.Sprintf("bob%d", i), 30*time.Second)
			if err == nil {
				t.Fatalf("bob, revoked, still reached the service (HTTP %d) through the descriptor his tor holds", status)
			}
			t.Logf("bob's try %d after his removal: %v", i+1, err)
		}
		// His tor itself works: it reaches the open service.
		if status, _, err := bobTor.Get(addr+"/", 90*time.Second); err != nil || status != 200 {
			t.Fatalf("bob's tor reaches no onion service at all, so his failures prove nothing: %d %v", status, err)
		}
		// With the sandbox on (the main service), tor cannot reload the
		// keys (it would die): onionchat stops with the reason rather than
		// serve the old set (systemd restarts it), and after the restart
		// only key holders get in.
		authorize(data, "alice", aliceDir)
		if _, err := aliceTor.Control("SIGNAL RELOAD"); err != nil { // alice's tor reads her new key
			t.Fatal(err)
		}
		if code := srv.Wait(t, 30*time.Second); code == 0 || !strings.Contains(srv.Output(), "client authorization changed") {
			t.Fatalf("a change under tor's sandbox: exit %d, output:\n%s", code, srv.Output())
		}
		srv = startOnion(top, "--config", cfg, "--data-dir", data)
		if status, _, err := aliceTor.Get(addr+"/", 120*time.Second); err != nil || status != 200 {
			t.Fatalf("alice cannot reach the restarted service: %d %v", status, err)
		}
		waitFor(t, "the service to refuse clients without a key", 120*time.Second, func() bool {
			net.NewNym()
			_, _, err := net.Client().Get(addr+"/", 10*time.Second)
			return err != nil
		})
		// Back to an open service for the tests that follow.
		runBinary(t, "auth", "remove", "alice", "--open", "--data-dir", data)
		srv.Signal(syscall.SIGTERM) // unless it has stopped already: the sandbox cannot reload
		srv.Wait(t, 30*time.Second)
		srv = startOnion(top, "--config", cfg, "--data-dir", data)
		net.NewNym()
		if status, _, err := net.Get(addr+"/", 120*time.Second); err != nil || status != 200 {
			t.Fatalf("the service did not open again: %d %v", status, err)
		}
	})

	t.Run("chromium through tor", func(t *testing.T) {
		browser := torChromium(t, net.SOCKSAddr(), addr)
		// Two tabs of one browser, as two tabs of one Tor Browser: one
		// connection pool, over one circuit to the site.
		a := cdpTab{Tab(t, browser)}
		b := cdpTab{SameBrowserTab(t, a.ctx)}
		joinOnion(t, addr+"/#room=onion", "lichen-marmot-signal-7", a, b)
		send(t, a, "hello through tor")
		waitMessage(t, b, "bob", "alice", "hello through tor")
		send(t, b, "and back")
		waitMessage(t, a, "alice", "bob", "and back")
		noCSPViolations(t, a, "alice")
	})

	t.Run("circuit closed, nothing lost", func(t *testing.T) {
		// alice and bob each on their own browser and their own client tor,
		// so on their own circuits: alice's is closed under her while bob
		// speaks; her page reconnects on a new circuit, resumes its session
		// and shows everything, in order, once; bob's page sees it delivered.
		bobTor := net.StartTor(t)
		must(t, bobTor.WaitBootstrapped(90*time.Second))
		alice := cdpTab{Tab(t, torChromium(t, net.SOCKSAddr(), addr))}
		bob := cdpTab{Tab(t, torChromium(t, bobTor.SOCKSAddr(), addr))}
		joinOnion(t, addr+"/#room=circuits", "quill-harbour-static-3", alice, bob)
		send(t, bob, "before the cut")
		waitMessage(t, alice, "alice", "bob", "before the cut")

		// Close every rendezvous circuit of alice's tor, and make it build new ones.
		status, err := net.Client().GetInfo("circuit-status")
		must(t, err)
		closed := 0
		for _, line := range strings.Split(status, "\n") {
			if f := strings.Fields(line); len(f) > 1 && strings.Contains(line, "PURPOSE=HS_CLIENT_REND") {
				if _, err := net.Client().Control("CLOSECIRCUIT " + f[0]); err == nil {
					closed++
				}
			}
		}
		if closed == 0 {
			t.Fatalf("alice's tor has no rendezvous circuit to close:\n%s", status)
		}
		must(t, net.NewNym())
		var said []string
		for i := range 5 {
			text := fmt.Sprintf("while alice's circuit was down %d", i)
			send(t, bob, text)
			said = append(said, text)
			time.Sleep(time.Second)
		}
		for _, text := range said {
			waitMessage(t, alice, "alice", "bob", text)
		}
		n, _ := alice.eval(`[...document.querySelectorAll("#messages li.msg .text")].filter(e => e.textContent.startsWith("while alice's circuit")).length`)
		if n != float64(len(said)) {
			t.Errorf("alice shows %v of bob's %d messages (shown twice?)", n, len(said))
		}
		mustSee(t, alice, "alice", alice.waitFor("alice to have reconnected", hasNoticeJS("Reconnected."), waitShort))
		must(t, bob.waitFor("bob's messages to show delivered", `[...document.querySelectorAll("#messages li.own")].filter(li => li.textContent.includes("circuit was down")).every(li => li.dataset.delivery === "delivered")`, waitLong))
		t.Logf("closed %d rendezvous circuits of alice's tor; she reconnected and got all %d messages", closed, len(said))

		// A picture through tor: its time against what the byte rate allows.
		photo := photoWithGPS(t, 5<<20)
		stripped := stripWithPage(t, photo)
		began := time.Now()
		giveFile(t, alice, "tor.jpg", "image/jpeg", photo)
		mustSee(t, bob, "bob", bob.waitFor("bob to show the picture", fileItemJS("tor.jpg")+`?.querySelector("img")?.naturalWidth > 0`, 3*waitLong))
		took := time.Since(began)
		if got := shownSHA256(t, bob, fileItemJS("tor.jpg")); got != sum(stripped) {
			t.Errorf("bob received %q through tor; the stripped picture is %s", got, sum(stripped))
		}
		allowed := time.Duration(float64(len(stripped)) * 4 / 3 * 32768 / 31744 / float64(192<<10) * float64(time.Second))
		t.Logf("through tor: a %.1f MiB picture reached bob in %v; the default byte rate allows %v: %.2fx",
			float64(len(stripped))/(1<<20), took.Round(100*time.Millisecond), allowed.Round(100*time.Millisecond), took.Seconds()/allowed.Seconds())
	})

	t.Run("same address after restart", func(t *testing.T) {
		tor := childTor(t, srv.Cmd.Process.Pid)
		must(t, srv.Signal(syscall.SIGTERM))
		if code := srv.Wait(t, 30*time.Second); code != 0 {
			t.Fatalf("exit %d after SIGTERM:\n%s", code, srv.Output())
		}
		if alive(tor) {
			t.Fatalf("tor (pid %d) outlived onionchat", tor)
		}
		srv = startOnion(top, "--config", cfg, "--data-dir", data)
		if srv.URL != addr {
			t.Fatalf("address changed across a restart: %s, then %s", addr, srv.URL)
		}
		if status, _, err := net.Get(addr+"/", 120*time.Second); err != nil || status != 200 {
			t.Fatalf("after the restart: %d %v", status, err)
		}
	})

	t.Run("tor dies", func(t *testing.T) {
		tor := childTor(t, srv.Cmd.Process.Pid)
		must(t, syscall.Kill(tor, syscall.SIGKILL))
		code := srv.Wait(t, 30*time.Second)
		if code == 0 || !strings.Contains(srv.Output(), "tor exited") ||
			!strings.Contains(srv.Output(), "exiting so that the service manager restarts onionchat") {
			t.Fatalf("after tor was killed: exit %d, output:\n%s", code, srv.Output())
		}
	})

	t.Run("ephemeral leaves no key", func(t *testing.T) {
		eData := filepath.Join(t.TempDir(), "data")
		eRuntime := shortDir(t)
		eCfg := onionConfig(t, net, eRuntime, "")
		var addrs []string
		for range 2 {
			p := startOnion(t, "--config", eCfg, "--data-dir", eData, "--ephemeral")
			addrs = append(addrs, p.URL)
			if status, _, err := net.Get(p.URL+"/", 120*time.Second); err != nil || status != 200 {
				t.Fatalf("ephemeral service unreachable: %d %v", status, err)
			}
			must(t, p.Signal(syscall.SIGTERM))
			if code := p.Wait(t, 30*time.Second); code != 0 {
				t.Fatalf("exit %d:\n%s", code, p.Output())
			}
			for _, dir := range []string{eData, eRuntime} {
				filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
					if err == nil && strings.HasPrefix(info.Name(), "hs_ed25519") {
						t.Errorf("a key was left on disk: %s", path)
					}
					return nil
				})
			}
		}
		if addrs[0] == addrs[1] {
			t.Fatalf("two ephemeral starts gave the same address %s", addrs[0])
		}
	})
}

// freshGet fetches rawURL through tor on a circuit of its own (SOCKS
// isolation by user name), once, without NEWNYM: tor keeps what it knows
// of onion services, descriptors included.
func freshGet(tor *tortest.Tor, rawURL, user string, timeout time.Duration) (int, error) {
	u := &url.URL{Scheme: "socks5", Host: tor.SOCKSAddr(), User: url.UserPassword(user, "x")}
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: http.ProxyURL(u), DisableKeepAlives: true}}
	resp, err := c.Get(rawURL)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func lastLineWith(s, substr string) string {
	var found string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			found = strings.TrimSpace(l)
		}
	}
	return found
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(time.Second) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out after %v waiting for %s", d, what)
}

// withTorOption adds a line to the [tor] section of a config file.
func withTorOption(t *testing.T, path, line string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "[tor]\n", "[tor]\n"+line+"\n", 1)
	must(t, os.WriteFile(path, []byte(s), 0o600))
	return path
}
