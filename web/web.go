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
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/onionchat/onionchat/hub"
)

//go:embed static
var static embed.FS

// DefaultHandshakeTimeout bounds the WebSocket handshake after the HTTP
// request has been read.
const DefaultHandshakeTimeout = 10 * time.Second

// Config configures the handler. Hub is required; every other zero value
// has the meaning documented on its field.
type Config struct {
	Hub *hub.Hub

	// HandshakeTimeout bounds writing the upgrade response; zero means
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// Logger receives errors only; nil means silent.
	Logger *slog.Logger
}

// Headers are set on every response, whatever its status.
var Headers = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; " +
		"connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; " +
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

// New returns the handler for the page, its assets and /ws.
func New(cfg Config) http.Handler {
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	files := loadStatic()
	ws := &wsHandler{
		hub:   cfg.Hub,
		limit: int64(cfg.Hub.Limits().MaxFrameBytes),
		upgrader: websocket.Upgrader{
			HandshakeTimeout: cfg.HandshakeTimeout,
			ReadBufferSize:   1024,
			WriteBufferPool:  noWriteBuffers{},
			// CheckOrigin nil: gorilla refuses (403) a request whose
			// Origin host differs from its Host, the defence against
			// cross-site WebSocket hijacking. Browsers always send Origin.
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range Headers {
			h.Set(k, v)
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path == "/ws" {
			ws.ServeHTTP(w, r)
			return
		}
		name := r.URL.Path
		if name == "/" {
			name = "/index.html"
		}
		f, ok := files[name]
		if !ok {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		h.Set("Content-Type", f.ctype)
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			w.Write(f.body)
		}
	})
}

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
// idle times, and with net/http's own error log (which would print client
// addresses) discarded.
func Server(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          log.New(discard{}, "", 0),
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// PeerKey is the key per-peer limits count a request by: the remote host,
// or for listeners that name something else as the remote address (a Tor
// circuit), that address as a whole.
func PeerKey(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}
