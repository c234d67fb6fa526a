package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/onionchat/onionchat/internal/testing/wstest"
)

// TestHostHeaderOnlyOwnNames is DNS rebinding against the real binary: a
// page on rebind.attacker.example whose name the attacker points at
// 127.0.0.1 makes the visitor's browser send requests with that Host (and
// a matching Origin). Local and LAN mode answer them 421 on every path,
// /ws included, and go on answering their own names.
func TestHostHeaderOnlyOwnNames(t *testing.T) {
	for _, tc := range []struct {
		mode string
		own  []string // host names, without the port
	}{
		{"local", []string{"127.0.0.1", "localhost", "[::1]"}},
		{"lan", []string{"127.0.0.1", "localhost", "[::1]"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			p := Start(t, "--mode", tc.mode, "--listen", "127.0.0.1:0", "--data-dir", t.TempDir()+"/data")
			u, _ := url.Parse(p.URL)
			port := u.Port()
			for _, host := range []string{"rebind.attacker.example:" + port, "rebind.attacker.example", "127.0.0.1:1", "127.0.0.1.attacker.example:" + port} {
				for _, path := range []string{"/", "/app.mjs", "/nope", "/ws"} {
					if code := getHost(t, p.URL, host, path); code != http.StatusMisdirectedRequest {
						t.Errorf("GET %s with Host %s: %d, want 421", path, host, code)
					}
				}
				ws, resp, err := dialHost(p.URL, host)
				if err == nil {
					ws.Close()
					t.Errorf("WebSocket with Host %s and a matching Origin was accepted", host)
				} else if resp == nil || resp.StatusCode != http.StatusMisdirectedRequest {
					t.Errorf("WebSocket with Host %s: %v, want 421", host, err)
				}
			}
			for _, name := range tc.own {
				host := name + ":" + port
				if code := getHost(t, p.URL, host, "/"); code != http.StatusOK {
					t.Errorf("GET / with Host %s: %d, want 200", host, code)
				}
				ws, _, err := dialHost(p.URL, host)
				if err != nil {
					t.Errorf("WebSocket with Host %s: %v", host, err)
					continue
				}
				c := wstest.New(t, ws)
				c.SendRaw([]byte(`{"v":2,"type":"ping","id":1}`))
				if f := c.Next(); f.Type() != "server" && f.Type() != "pong" && f.Type() != "error" {
					t.Errorf("WebSocket with Host %s: first frame %v", host, f)
				}
				ws.Close()
			}
		})
	}
}

// getHost sends GET path to the server at base with the given Host header
// and returns the status.
func getHost(t *testing.T, base, host, path string) int {
	t.Helper()
	req, err := http.NewRequest("GET", strings.TrimSuffix(base, "/")+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer cl.CloseIdleConnections()
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", path, host, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// dialHost opens /ws on the server at base as a browser on a page of host
// would: Host and Origin name host.
func dialHost(base, host string) (*websocket.Conn, *http.Response, error) {
	scheme := "http://"
	if strings.HasPrefix(base, "https://") {
		scheme = "https://"
	}
	d := websocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, HandshakeTimeout: 10 * time.Second}
	return d.Dial(wstest.WSURL(base), http.Header{"Host": {host}, "Origin": {scheme + host}})
}

// TestHostHeaderUnixSocket: local mode on a unix socket, behind a proxy of
// the owner's, answers only the names in local.hosts.
func TestHostHeaderUnixSocket(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, "oc.sock")
	cfg := filepath.Join(t.TempDir(), "c.toml")
	must(t, os.WriteFile(cfg, []byte(fmt.Sprintf("mode = \"local\"\n[local]\nlisten = \"unix:%s\"\nhosts = [\"chat.example\", \"abcdef.onion\"]\n", sock)), 0o600))
	cmd := exec.Command(Binary(t), "--config", cfg, "--data-dir", filepath.Join(t.TempDir(), "data"))
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	must(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	defer cl.CloseIdleConnections()
	get := func(host string) int {
		req, _ := http.NewRequest("GET", "http://"+host+"/", nil)
		resp, err := cl.Do(req)
		if err != nil {
			return -1
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for deadline := time.Now().Add(StartTimeout); get("chat.example") == -1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the unix socket never answered")
		}
	}
	for host, want := range map[string]int{"chat.example": 200, "abcdef.onion": 200, "CHAT.example": 200,
		"rebind.attacker.example": 421, "127.0.0.1": 421, "localhost": 421, "chat.example:8080": 421} {
		if got := get(host); got != want {
			t.Errorf("Host %s over the unix socket: %d, want %d", host, got, want)
		}
	}
}
