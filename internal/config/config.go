// Package config reads onionchat's TOML configuration. Decoding is strict:
// an unknown key, a value of the wrong type or a value out of range is an
// error that names the file, the line and the key.
//
// The package owns the file format and its validation, and nothing else:
// it imports no other package of onionchat. A part's defaults are the
// part's own constants (hub.Default*, web.Default*, onion.Default*);
// internal/app puts them into the base configuration that a file is read
// over (app.Defaults), and turns a Config into each part's settings.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Modes.
const (
	ModeOnion = "onion" // publish an onion service through our own tor
	ModeLAN   = "lan"   // serve HTTPS with a self-signed certificate
	ModeBoth  = "both"  // both at once, one hub
	ModeLocal = "local" // plain HTTP on loopback or a unix socket, for this machine or a proxy in front
)

// Config is the whole configuration: one section a part. The zero value
// is not valid; a file is read over a base that holds every default
// (app.Defaults).
type Config struct {
	Mode    string  `toml:"mode"`
	DataDir string  `toml:"data_dir"` // empty: the environment's (app.DataDir)
	LAN     LAN     `toml:"lan"`
	Local   Local   `toml:"local"`
	Hub     Hub     `toml:"hub"`
	Web     Web     `toml:"web"`
	Tor     Tor     `toml:"tor"`
	Cluster Cluster `toml:"cluster"`

	// lines maps each dotted key the file set to its line; file is the
	// file's name. Both are empty for a Config built in code.
	file  string
	lines map[string]int
}

// LAN configures the HTTPS mode.
type LAN struct {
	Listen   string   `toml:"listen"`    // host:port
	Names    []string `toml:"names"`     // extra certificate names (DNS names or IPs)
	CertFile string   `toml:"cert_file"` // with key_file: your own certificate instead of ours
	KeyFile  string   `toml:"key_file"`
}

// Local configures local mode: plain HTTP for this machine's browser
// (http://127.0.0.1 is a secure context, so the page can encrypt) or for a
// tor or reverse proxy of your own in front.
type Local struct {
	Listen string `toml:"listen"` // loopback host:port, or unix:/path
	// Hosts are more Host header values to answer to ("host" or
	// "host:port"): the names a proxy in front forwards. On a unix socket
	// they are the only ones, so they are required there; on loopback
	// the loopback names with the port are always accepted.
	Hosts []string `toml:"hosts"`
}

// Hub holds the relay's limits and its resume window.
type Hub struct {
	MaxFrameBytes   int      `toml:"max_frame_bytes"`
	Rate            float64  `toml:"rate"`
	Burst           int      `toml:"burst"`
	MaxConns        int      `toml:"max_conns"`
	MaxConnsPerPeer int      `toml:"max_conns_per_peer"`
	MaxRooms        int      `toml:"max_rooms"`
	MaxMembers      int      `toml:"max_members"`
	SendQueue       int      `toml:"send_queue"`
	SendQueueBytes  int      `toml:"send_queue_bytes"`
	PingInterval    Duration `toml:"ping_interval"`
	IdleTimeout     Duration `toml:"idle_timeout"`
	JoinTimeout     Duration `toml:"join_timeout"`
	WriteTimeout    Duration `toml:"write_timeout"`
	ResumeWindow    Duration `toml:"resume_window"`
	JoinRate        float64  `toml:"join_rate"`
	JoinBurst       int      `toml:"join_burst"`
	ByteRate        int      `toml:"byte_rate"`
	MaxFileBytes    int      `toml:"max_file_bytes"`
}

// Web holds the web server's settings.
type Web struct {
	HandshakeTimeout Duration `toml:"handshake_timeout"`
}

// Duration is a time.Duration written as a string such as "30s" or "1h".
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler. Its error is a
// parser error so that the decoder reports the line it came from.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil || !isDurationText(b) {
		return &unstable.ParserError{Highlight: b, Message: `want a duration such as "30s", "5m" or "1h"`}
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// isDurationText rejects bare numbers: "5" parses only as "0".
func isDurationText(b []byte) bool {
	return len(b) > 0 && (b[len(b)-1] < '0' || b[len(b)-1] > '9')
}

// Default returns the settings the format itself gives a key no file
// sets: the mode, the listen addresses and empty lists. Every part's
// setting is zero here; app.Defaults fills them from the parts.
func Default() Config {
	return Config{
		Mode:    ModeOnion,
		LAN:     LAN{Listen: "127.0.0.1:8443", Names: []string{}},
		Local:   Local{Listen: "127.0.0.1:8080", Hosts: []string{}},
		Tor:     Tor{ExtraTorrc: []string{}},
		Cluster: Cluster{Peers: []string{}},
	}
}

// Error is a problem with one key of a configuration file.
type Error struct {
	File string
	Line int    // 1-based; 0 when unknown
	Key  string // dotted, such as "hub.max_conns"; empty for syntax errors
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads the file at path over base.
func Load(path string, base Config) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data, base)
}

// Parse decodes data, named name in errors, over base and validates the
// result. base holds the value of every key data does not set
// (app.Defaults); it is not changed.
func Parse(name string, data []byte, base Config) (Config, error) {
	c := base
	lines, _ := keyLines(data) // a syntax error is reported, with its line, by Decode
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, decodeError(name, err)
	}
	c.file, c.lines = name, lines
	if err := c.validate(); err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.File = name
			e.Line = lines[e.Key]
		}
		return Config{}, err
	}
	return c, nil
}

// Validate checks a configuration built in code or changed by flags; its
// errors name the key but no file or line.
func (c *Config) Validate() error {
	err := c.validate()
	var e *Error
	if errors.As(err, &e) && e.File == "" {
		e.File = "config"
	}
	return err
}

// Errorf returns an *Error about key, naming the file and line that set
// it when c was read from a file. It is for the rules a part owns and
// applies itself (such as onion's "auto", "on" or "off"), so that their
// errors read like the format's.
func (c *Config) Errorf(key, format string, args ...any) error {
	file := c.file
	if file == "" {
		file = "config"
	}
	return &Error{File: file, Line: c.lines[key], Key: key, Msg: fmt.Sprintf(format, args...)}
}

func decodeError(name string, err error) error {
	var de *toml.DecodeError
	var pe *unstable.ParserError
	switch {
	case errors.As(err, &de):
		row, _ := de.Position()
		key := strings.Join(de.Key(), ".")
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		switch {
		case msg == "unknown field" && retired[key] != "":
			msg = retired[key]
		case msg == "unknown field":
			msg = "unknown key"
			if !isSection(strings.SplitN(key, ".", 2)[0]) && strings.Contains(key, ".") {
				msg = "unknown key (no such section)"
			}
		case msg == "missing table":
			msg = "unknown section"
		case strings.HasPrefix(msg, "cannot decode TOML "):
			got := strings.Fields(strings.TrimPrefix(msg, "cannot decode TOML "))[0]
			msg = "want " + want(key) + ", not a TOML " + got
		}
		return &Error{File: name, Line: row, Key: key, Msg: msg}
	case errors.As(err, &pe):
		return &Error{File: name, Msg: pe.Message}
	}
	return &Error{File: name, Msg: err.Error()}
}

// retired names the keys of earlier versions and says what replaced
// them: a file that sets one is refused with its line and the new key.
var retired = map[string]string{
	"hub.history_messages":  "was removed: rooms keep recent frames for hub.resume_window",
	"hub.history_ttl":       "was removed: rooms keep recent frames for hub.resume_window",
	"hub.handshake_timeout": "has moved: set web.handshake_timeout in the [web] section",
}

// isSection says whether name is a section ([name]) of the file.
func isSection(name string) bool {
	t, ok := keyType(name)
	return ok && t.Kind() == reflect.Struct && t != durationType
}

var durationType = reflect.TypeFor[Duration]()

// keyType returns the Go type a dotted key decodes into, following the
// toml tags from Config.
func keyType(key string) (reflect.Type, bool) {
	t := reflect.TypeFor[Config]()
	for _, part := range strings.Split(key, ".") {
		if t.Kind() != reflect.Struct || t == durationType {
			return nil, false
		}
		i := slices.IndexFunc(reflect.VisibleFields(t), func(f reflect.StructField) bool { return f.Tag.Get("toml") == part })
		if i < 0 {
			return nil, false
		}
		t = reflect.VisibleFields(t)[i].Type
	}
	return t, true
}

// checkLocal accepts only addresses this machine alone can reach: local
// mode serves plain HTTP, which must never reach a network.
func checkLocal(addr string) error {
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("want unix:/absolute/path, not %q", addr)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want a loopback host:port such as \"127.0.0.1:8080\" or unix:/path, not %q", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("local mode serves plain HTTP, so only loopback addresses (127.0.0.1, ::1, localhost) are allowed, not %q; use lan mode for a network", host)
	}
	return nil
}

// checkHost accepts a Host header value: a DNS name, an IPv4 address or
// a bracketed IPv6 address, with an optional port.
func checkHost(h string) error {
	host, port := h, ""
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		host, port = h[:i], h[i+1:]
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: bad port; want a host name or address, optionally with :port", h)
		}
	}
	if ip, ok := strings.CutPrefix(host, "["); ok {
		if a := net.ParseIP(strings.TrimSuffix(ip, "]")); a == nil || !strings.HasSuffix(ip, "]") || a.To4() != nil {
			return fmt.Errorf("%q is not a bracketed IPv6 address", h)
		}
		return nil
	}
	if host == "" || len(host) > 253 {
		return fmt.Errorf("%q: want a host name or address, optionally with :port", h)
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("%q: a host name has only letters, digits, '-' and '.' (IPv6 in brackets)", h)
		}
	}
	return nil
}

// want describes the type a key takes, for type-mismatch errors.
func want(key string) string {
	t, ok := keyType(key)
	switch {
	case !ok:
		return "a value of the documented type"
	case t == durationType:
		return `a duration string such as "30s"`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list of strings"
	case reflect.Float64:
		return "a number"
	case reflect.Int:
		return "an integer"
	case reflect.Bool:
		return "true or false"
	case reflect.Struct:
		return "a section [" + key + "]"
	}
	return "a value of the documented type"
}

// keyLines maps each dotted key of the document to the line it is set on.
func keyLines(data []byte) (map[string]int, error) {
	lines := make(map[string]int)
	var p unstable.Parser
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			var line int
			table, line = keyParts(&p, e.Key())
			lines[strings.Join(table, ".")] = line
		case unstable.KeyValue:
			parts, line := keyParts(&p, e.Key())
			lines[strings.Join(append(append([]string(nil), table...), parts...), ".")] = line
		}
	}
	return lines, p.Error()
}

// keyParts returns a key's parts and the line of its first part.
func keyParts(p *unstable.Parser, it unstable.Iterator) (parts []string, line int) {
	for it.Next() {
		n := it.Node()
		if line == 0 {
			line = p.Shape(n.Raw).Start.Line
		}
		parts = append(parts, string(n.Data))
	}
	return parts, line
}

func bad(key, format string, args ...any) error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
}

func (c *Config) validate() error {
	switch c.Mode {
	case ModeOnion, ModeLAN, ModeBoth, ModeLocal:
	default:
		return bad("mode", "want %q, %q, %q or %q, not %q", ModeOnion, ModeLAN, ModeBoth, ModeLocal, c.Mode)
	}
	if err := checkLocal(c.Local.Listen); err != nil {
		return bad("local.listen", "%v", err)
	}
	for _, h := range c.Local.Hosts {
		if err := checkHost(h); err != nil {
			return bad("local.hosts", "%v", err)
		}
	}
	if c.Mode == ModeLocal && strings.HasPrefix(c.Local.Listen, "unix:") && len(c.Local.Hosts) == 0 {
		return bad("local.hosts", "on a unix socket, list the Host names your proxy forwards (such as your onion address); requests for any other host are refused")
	}
	if err := checkDataDir(c.DataDir); err != nil {
		return bad("data_dir", "%v", err)
	}
	if _, port, err := net.SplitHostPort(c.LAN.Listen); err != nil {
		return bad("lan.listen", "want host:port such as \"127.0.0.1:8443\", not %q", c.LAN.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return bad("lan.listen", "bad port %q", port)
	}
	for _, n := range c.LAN.Names {
		if strings.TrimSpace(n) == "" || strings.ContainsAny(n, " /:\t") && net.ParseIP(n) == nil {
			return bad("lan.names", "%q is neither a host name nor an IP address", n)
		}
	}
	if (c.LAN.CertFile == "") != (c.LAN.KeyFile == "") {
		return bad("lan.cert_file", "set both cert_file and key_file, or neither")
	}
	h := &c.Hub
	ints := []struct {
		key      string
		v        int
		min, max int
	}{
		{"hub.max_frame_bytes", h.MaxFrameBytes, 1 << 10, 16 << 20},
		{"hub.burst", h.Burst, 1, 1 << 20},
		{"hub.max_conns", h.MaxConns, 1, 1 << 24},
		{"hub.max_conns_per_peer", h.MaxConnsPerPeer, 1, 1 << 24},
		{"hub.max_rooms", h.MaxRooms, 1, 1 << 24},
		{"hub.max_members", h.MaxMembers, 2, 1 << 24},
		{"hub.send_queue", h.SendQueue, 1, 1 << 20},
		{"hub.send_queue_bytes", h.SendQueueBytes, h.MaxFrameBytes, 1 << 30},
		{"hub.join_burst", h.JoinBurst, 1, 1 << 20},
		{"hub.byte_rate", h.ByteRate, 1 << 10, 1 << 30},
		{"hub.max_file_bytes", h.MaxFileBytes, 1 << 10, 64 << 20}, // a receiving page holds a whole file in memory
	}
	for _, i := range ints {
		if i.v < i.min || i.v > i.max {
			return bad(i.key, "want %d to %d, not %d", i.min, i.max, i.v)
		}
	}
	if !(h.Rate > 0) || h.Rate > 1e6 || math.IsNaN(h.Rate) {
		return bad("hub.rate", "want frames per second above 0 and at most 1000000, not %v", h.Rate)
	}
	if !(h.JoinRate > 0) || h.JoinRate > 1e6 || math.IsNaN(h.JoinRate) {
		return bad("hub.join_rate", "want joins per second above 0 and at most 1000000, not %v", h.JoinRate)
	}
	durs := []struct {
		key string
		v   time.Duration
	}{
		{"hub.ping_interval", h.PingInterval.Duration},
		{"hub.idle_timeout", h.IdleTimeout.Duration},
		{"hub.join_timeout", h.JoinTimeout.Duration},
		{"hub.write_timeout", h.WriteTimeout.Duration},
		{"hub.resume_window", h.ResumeWindow.Duration},
		{"web.handshake_timeout", c.Web.HandshakeTimeout.Duration},
	}
	for _, d := range durs {
		if d.v < 10*time.Millisecond || d.v > 30*24*time.Hour {
			return bad(d.key, "want 10ms to 720h, not %v", d.v)
		}
	}
	if h.IdleTimeout.Duration <= h.PingInterval.Duration {
		return bad("hub.idle_timeout", "must be longer than hub.ping_interval (%v)", h.PingInterval.Duration)
	}
	if err := c.Tor.validate(); err != nil {
		return err
	}
	return c.Cluster.validate(c.Mode)
}
