// Package config reads onionchat's TOML configuration. Decoding is strict:
// an unknown key, a value of the wrong type or a value out of range is an
// error that names the file, the line and the key.
//
// Each section of the file is one part's own settings type, decoded as
// it stands: [hub] is hub.Config, [web] web.Config, [tor] onion.Config,
// [cluster] cluster.Config. A part owns its keys (toml tags), its
// defaults (WithDefaults) and its ranges (Validate); this package owns
// only what a file needs beyond them: reading it, the file, line and key
// of an error, retired keys naming their replacement, the sections, the
// modes' own sections ([lan], [local]) and the rules that span sections.
package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/onionchat/onionchat/hub"
	"github.com/onionchat/onionchat/internal/cluster"
	"github.com/onionchat/onionchat/internal/setting"
	"github.com/onionchat/onionchat/onion"
	"github.com/onionchat/onionchat/web"
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

// Config is the whole configuration: one section a part. Default holds
// every default; a file is read over it.
type Config struct {
	Mode    string         `toml:"mode"`
	DataDir string         `toml:"data_dir"` // empty: the environment's (app.DataDir)
	LAN     LAN            `toml:"lan"`
	Local   Local          `toml:"local"`
	Hub     hub.Config     `toml:"hub"`
	Web     web.Config     `toml:"web"`
	Tor     onion.Config   `toml:"tor"`
	Cluster cluster.Config `toml:"cluster"`

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

// Default returns the configuration without a file: the mode, the
// modes' listen addresses and each part's defaults (its WithDefaults).
func Default() Config {
	return Config{
		Mode:    ModeOnion,
		LAN:     LAN{Listen: "127.0.0.1:8443"},
		Local:   Local{Listen: "127.0.0.1:8080"},
		Hub:     hub.Config{}.WithDefaults(),
		Web:     web.Config{}.WithDefaults(),
		Tor:     onion.Config{}.WithDefaults(),
		Cluster: cluster.Config{}.WithDefaults(),
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

// Load reads the file at path over Default; "" means no file, Default
// alone.
func Load(path string) (Config, error) {
	if path == "" {
		return Default(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes data, named name in errors, over Default and validates
// the result.
func Parse(name string, data []byte) (Config, error) {
	return parse(name, data, Default())
}

// parse decodes data over base, which holds the value of every key data
// does not set and is not changed.
func parse(name string, data []byte, base Config) (Config, error) {
	lines, _ := keyLines(data) // a syntax error is reported, with its line, by Decode
	file := reflect.New(fileType).Elem()
	copyKeys(file, reflect.ValueOf(base))
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(file.Addr().Interface()); err != nil {
		return Config{}, decodeError(name, err)
	}
	c := base
	copyKeys(reflect.ValueOf(&c).Elem(), file)
	c.file, c.lines = name, lines
	if err := c.validate(); err != nil {
		return Config{}, c.locate(err)
	}
	return c, nil
}

// Validate checks a configuration built in code or changed by flags; its
// errors name the key but no file or line.
func (c *Config) Validate() error { return c.locate(c.validate()) }

// Locate returns a part's *setting.Error about a key of section as an
// *Error naming the file and line that set the key, when c was read
// from a file. It is for what a part checks after the file is read
// (cluster.Config.ReadPassword), so that its errors read like the
// file's own. Other errors are returned as they are.
func (c *Config) Locate(section string, err error) error {
	return c.locate(inSection(section, err))
}

// locate fills in the file and line of an *Error.
func (c *Config) locate(err error) error {
	var e *Error
	if errors.As(err, &e) {
		e.File = cmp.Or(c.file, "config")
		e.Line = c.lines[e.Key]
	}
	return err
}

// inSection turns a part's *setting.Error into an *Error about the key in
// section; other errors are returned as they are.
func inSection(section string, err error) error {
	var e *setting.Error
	if errors.As(err, &e) {
		return &Error{Key: section + "." + e.Key, Msg: e.Msg}
	}
	return err
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
	return ok && t.Kind() == reflect.Struct
}

// keyType returns the Go type a dotted key decodes into, following the
// toml tags from Config.
func keyType(key string) (reflect.Type, bool) {
	t := reflect.TypeFor[Config]()
	for _, part := range strings.Split(key, ".") {
		if t.Kind() != reflect.Struct {
			return nil, false
		}
		i := slices.IndexFunc(keys(t), func(f reflect.StructField) bool { return keyName(f) == part })
		if i < 0 {
			return nil, false
		}
		t = keys(t)[i].Type
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
	case t.Kind() == reflect.Pointer:
		t = t.Elem()
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

// validator is a part's settings type: a section whose ranges the part
// checks itself.
type validator interface{ Validate() error }

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
	if c.Cluster.Front != "" && c.Mode != ModeOnion {
		return bad("cluster.front", "an Onionbalance front is for onion mode, not %q", c.Mode)
	}
	v := reflect.ValueOf(*c)
	for _, f := range keys(v.Type()) {
		if s, ok := v.FieldByIndex(f.Index).Interface().(validator); ok {
			if err := s.Validate(); err != nil {
				return inSection(keyName(f), err)
			}
		}
	}
	return nil
}

// checkDataDir checks data_dir: empty (the default) or an absolute path
// that tor's torrc can take (tor's state and the service key live under
// it), by onion's rule (onion.CheckTorrcDir).
func checkDataDir(p string) error {
	if p == "" {
		return nil
	}
	err := onion.CheckTorrcDir(p, false)
	if err != nil && filepath.IsAbs(p) { // a value that could reach the torrc: say what it risks
		return fmt.Errorf("%w, where that could add lines of its own", err)
	}
	return err
}
