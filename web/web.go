// Package web serves onionchat's single page and its WebSocket endpoint.
// It owns the embedded static files, the security headers every response
// carries, the WebSocket upgrade (with its same-origin check) and the wire
// encoding of hub frames as WebSocket frames.
//
// It knows nothing of Tor or of where its listener comes from: the caller
// serves the handler from New on a net.Listener of its choice (a TLS
// listener in LAN mode, tor's unix socket in onion mode). It writes no
// access log and logs nothing about requests or clients.
package web

import (
	"embed"
	"io/fs"
	"log"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/onionchat/onionchat/hub"
	"github.com/onionchat/onionchat/internal/setting"
)

//go:embed static
var static embed.FS

// DefaultHandshakeTimeout bounds the WebSocket handshake after the HTTP
// request has been read.
const DefaultHandshakeTimeout = 10 * time.Second

// Config configures the handler. Hub is required; every other zero value
// has the meaning documented on its field. HandshakeTimeout is the [web]
// section of the configuration file: its toml tag is its key there,
// Validate its range.
type Config struct {
	Hub *hub.Hub `toml:"-"`

	// Hosts lists the Host header values the server answers to (DNS
	// rebinding, docs/protocol.md §5.1): "host:port", or "host" alone
	// where the scheme's default port is meant, compared without regard
	// to case; a "*.example.org" entry stands for one label, as in a
	// certificate. A request for any other host gets 421 Misdirected
	// Request, on every path. Nil means the loopback names 127.0.0.1,
	// localhost and [::1] with the port the request arrived on.
	Hosts []string `toml:"-"`

	// HandshakeTimeout bounds the time a connection may spend before the
	// WebSocket upgrade without progress: the TLS handshake, each request
	// header, an idle keep-alive connection, writing the upgrade
	// response. Zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration `toml:"handshake_timeout"`

	// Logger receives errors only; nil means silent.
	Logger *slog.Logger `toml:"-"`
}

// WithDefaults returns c with every zero setting at its default.
func (c Config) WithDefaults() Config {
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	return c
}

// Validate reports a setting out of the range an owner may set, as a
// *setting.Error naming its key; zero is out of range (see
// setting.Range).
func (c Config) Validate() error {
	return setting.Timeout("handshake_timeout", c.HandshakeTimeout)
}

// Headers are set on every response, whatever its status.
var Headers = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; " +
		"connect-src 'self'; img-src 'self' blob:; base-uri 'none'; form-action 'none'; " +
		"frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'",
	"Referrer-Policy":              "no-referrer",
	"X-Content-Type-Options":       "nosniff",
	"Cache-Control":                "no-store",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
	"Cross-Origin-Embedder-Policy": "require-corp",
	"X-Frame-Options":              "DENY",
	"Permissions-Policy": "accelerometer=(), autoplay=(), camera=(), clipboard-read=(), " +
		"clipboard-write=(), display-capture=(), encrypted-media=(), fullscreen=(), " +
		"geolocation=(), gyroscope=(), hid=(), identity-credentials-get=(), idle-detection=(), " +
		"magnetometer=(), microphone=(), midi=(), otp-credentials=(), payment=(), " +
		"picture-in-picture=(), publickey-credentials-create=(), publickey-credentials-get=(), " +
		"screen-wake-lock=(), serial=(), storage-access=(), usb=(), web-share=(), " +
		"xr-spatial-tracking=()",
}

// file is one embedded static file, ready to serve.
type file struct {
	body  []byte
	ctype string
}

// Handler serves the page, its assets and /ws. Serve it with Server on
// listeners wrapped by Listener, so that connections before the upgrade
// are bounded.
type Handler struct {
	cfg   Config
	files map[string]file
	ws    *wsHandler
	hosts map[string]bool // exact "host:port" or "host", lower case
	wild  []string        // ".example.org:port" of "*.example.org:port" entries
	gate  *gate
}

// New returns the handler.
func New(cfg Config) *Handler {
	cfg = cfg.WithDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	lim := cfg.Hub.Limits()
	perPeer, total := PendingLimits(lim.MaxConns, lim.MaxConnsPerPeer)
	h := &Handler{
		cfg:   cfg,
		files: loadStatic(),
		ws: &wsHandler{
			hub:   cfg.Hub,
			limit: int64(lim.MaxFrameBytes),
			upgrader: websocket.Upgrader{
				HandshakeTimeout: cfg.HandshakeTimeout,
				ReadBufferSize:   1024,
				WriteBufferPool:  noWriteBuffers{},
				// CheckOrigin nil: gorilla refuses (403) a request whose
				// Origin host differs from its Host, the defence against
				// cross-site WebSocket hijacking. Browsers always send Origin.
			},
		},
		gate: newGate(perPeer, total, lim.MaxConns+total+max(MinClosingConns, lim.MaxConns)),
	}
	if cfg.Hosts != nil {
		h.hosts = make(map[string]bool)
		for _, x := range cfg.Hosts {
			x = strings.ToLower(x)
			if rest, ok := strings.CutPrefix(x, "*."); ok {
				h.wild = append(h.wild, "."+rest)
			} else {
				h.hosts[x] = true
			}
		}
	}
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	for k, v := range Headers {
		hd.Set(k, v)
	}
	if !h.hostAllowed(r) {
		http.Error(w, "misdirected request: this server does not answer to that host name", http.StatusMisdirectedRequest)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/ws" {
		h.ws.ServeHTTP(w, r)
		return
	}
	name := r.URL.Path
	if name == "/" {
		name = "/index.html"
	}
	f, ok := h.files[name]
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	hd.Set("Content-Type", f.ctype)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(f.body)
	}
}

// hostAllowed reports whether r's Host is one of the server's own names.
func (h *Handler) hostAllowed(r *http.Request) bool {
	host := strings.ToLower(r.Host)
	if h.hosts == nil {
		a, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
		if !ok {
			return false
		}
		p := strconv.Itoa(a.Port)
		return host == "127.0.0.1:"+p || host == "localhost:"+p || host == "[::1]:"+p
	}
	if h.hosts[host] {
		return true
	}
	for _, suffix := range h.wild {
		if label, ok := strings.CutSuffix(host, suffix); ok && label != "" && !strings.ContainsAny(label, ".:[]") {
			return true
		}
	}
	return false
}

// Listener wraps ln so that the handler's limits hold on its connections:
// connections before the upgrade are bounded per peer and in all
// (PendingLimits), and the handler's listeners together stop accepting
// while they hold as many connections as every session and every pending
// connection could need. For LAN mode, put TLS on the listener returned.
func (h *Handler) Listener(ln net.Listener) net.Listener {
	return &gateListener{Listener: ln, g: h.gate, done: make(chan struct{})}
}

// Pending returns how many connections have not (yet) been upgraded.
func (h *Handler) Pending() int { return h.gate.pending() }

func loadStatic() map[string]file {
	files := make(map[string]file)
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		files[strings.TrimPrefix(p, "static")] = file{body: b, ctype: contentType(p)}
		return nil
	})
	if err != nil {
		panic("web: embedded files: " + err.Error()) // cannot happen: the FS is compiled in
	}
	return files
}

func contentType(p string) string {
	switch path.Ext(p) {
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".html":
		return "text/html; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".ico":
		return "image/x-icon"
	case ".svg":
		return "image/svg+xml"
	}
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// Server returns an http.Server for h with bounded header, handshake and
// idle times, with its connections counted until their upgrade, and with
// net/http's own error log (which would print client addresses)
// discarded.
func (h *Handler) Server() *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: h.cfg.HandshakeTimeout,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       h.cfg.HandshakeTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          log.New(discard{}, "", 0),
		ConnState:         h.gate.connState,
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
