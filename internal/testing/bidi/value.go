package bidi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
)

// RemoteValue is a value as the browser serializes it
// (https://w3c.github.io/webdriver-bidi/#type-script-RemoteValue).
type RemoteValue struct {
	Type     string          `json:"type"`
	Value    json.RawMessage `json:"value,omitempty"`
	Handle   string          `json:"handle,omitempty"`
	SharedID string          `json:"sharedId,omitempty"`
}

// Object stands for a value with no plain Go counterpart: a DOM node, a
// function, a window, an error object, a promise, a symbol and the like.
type Object struct {
	Type     string // the RemoteValue type, e.g. "node", "function"
	SharedID string // for nodes: usable as an element reference
}

// Go converts a RemoteValue to a Go value:
//
//	undefined, null          nil
//	string                   string
//	number                   float64 (NaN, ±Inf and -0 included)
//	boolean                  bool
//	bigint                   *big.Int
//	array, set               []any
//	object, map              map[string]any (non-string map keys are
//	                         formatted with %v)
//	date                     string (ISO 8601)
//	regexp                   string (/pattern/flags)
//	anything else            Object
//
// Nested values are converted the same way. A value the browser left out
// (beyond the serialization depth, or seen before in a cycle) has no
// "value" and converts to nil for containers.
func (v RemoteValue) Go() (any, error) {
	switch v.Type {
	case "undefined", "null":
		return nil, nil
	case "string", "date":
		var s string
		err := json.Unmarshal(v.Value, &s)
		return s, err
	case "boolean":
		var b bool
		err := json.Unmarshal(v.Value, &b)
		return b, err
	case "number":
		return parseNumber(v.Value)
	case "bigint":
		var s string
		if err := json.Unmarshal(v.Value, &s); err != nil {
			return nil, err
		}
		n, ok := new(big.Int).SetString(s, 10)
		if !ok {
			return nil, fmt.Errorf("bad bigint %q", s)
		}
		return n, nil
	case "regexp":
		var re struct{ Pattern, Flags string }
		err := json.Unmarshal(v.Value, &re)
		return "/" + re.Pattern + "/" + re.Flags, err
	case "array", "set":
		if v.Value == nil {
			return nil, nil
		}
		var items []RemoteValue
		if err := json.Unmarshal(v.Value, &items); err != nil {
			return nil, err
		}
		out := make([]any, len(items))
		for i, item := range items {
			x, err := item.Go()
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case "object", "map":
		if v.Value == nil {
			return nil, nil
		}
		// A list of [key, value] pairs; keys are strings, or RemoteValues
		// for maps.
		var pairs [][2]json.RawMessage
		if err := json.Unmarshal(v.Value, &pairs); err != nil {
			return nil, err
		}
		out := make(map[string]any, len(pairs))
		for _, p := range pairs {
			var key string
			if err := json.Unmarshal(p[0], &key); err != nil {
				k, err := decodeGo(p[0])
				if err != nil {
					return nil, err
				}
				key = fmt.Sprint(k)
			}
			x, err := decodeGo(p[1])
			if err != nil {
				return nil, err
			}
			out[key] = x
		}
		return out, nil
	default:
		return Object{Type: v.Type, SharedID: v.SharedID}, nil
	}
}

// parseNumber reads a number's value: JSON, or one of the strings the
// protocol uses for what JSON cannot carry.
func parseNumber(raw json.RawMessage) (float64, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "NaN":
			return math.NaN(), nil
		case "-0":
			return math.Copysign(0, -1), nil
		case "Infinity":
			return math.Inf(1), nil
		case "-Infinity":
			return math.Inf(-1), nil
		}
		return 0, fmt.Errorf("bad number %q", s)
	}
	var f float64
	err := json.Unmarshal(raw, &f)
	return f, err
}

// Truthy reports whether a value converted by RemoteValue.Go is truthy in
// JavaScript.
func Truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case float64:
		return x != 0 && !math.IsNaN(x)
	case *big.Int:
		return x.Sign() != 0
	default:
		return true
	}
}

// JS renders v as a JavaScript literal (JSON is one), for building
// expressions: fmt.Sprintf("setName(%s)", bidi.JS(name)). It panics if v
// cannot be marshalled to JSON.
func JS(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("bidi: JS(%T): %v", v, err))
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// ScriptError is an exception thrown by evaluated JavaScript.
type ScriptError struct {
	Text         string // e.g. "Error: no such user"
	Line, Column int    // 0-based, in the evaluated source
}

func (e *ScriptError) Error() string {
	return fmt.Sprintf("javascript exception at %d:%d: %s", e.Line, e.Column, e.Text)
}

// Message is a script.message event: data sent by a preload script (or a
// function given a channel) through its channel.
type Message struct {
	Channel string
	Context string // browsing context (tab) it came from
	Data    any    // converted as by RemoteValue.Go
}

// LogEntry is a log.entryAdded event: a console call in a page, or an
// error the page's console shows (uncaught exceptions, and also
// Content-Security-Policy violations, which Firefox reports as
// "javascript" errors).
type LogEntry struct {
	Type      string // "console" or "javascript"
	Level     string // "debug", "info", "warn" or "error"
	Text      string
	Context   string // browsing context (tab) it came from
	Timestamp int64  // milliseconds since the epoch
}

func (l LogEntry) String() string {
	return fmt.Sprintf("%s %s: %s", l.Type, l.Level, l.Text)
}

type source struct {
	Context string `json:"context"`
}

func parseMessage(params json.RawMessage) (Message, error) {
	var p struct {
		Channel string      `json:"channel"`
		Data    RemoteValue `json:"data"`
		Source  source      `json:"source"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return Message{}, err
	}
	data, err := p.Data.Go()
	if err != nil {
		return Message{}, err
	}
	return Message{Channel: p.Channel, Context: p.Source.Context, Data: data}, nil
}

func parseLogEntry(params json.RawMessage) (LogEntry, error) {
	var p struct {
		Type      string  `json:"type"`
		Level     string  `json:"level"`
		Text      *string `json:"text"`
		Source    source  `json:"source"`
		Timestamp float64 `json:"timestamp"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return LogEntry{}, err
	}
	l := LogEntry{Type: p.Type, Level: p.Level, Context: p.Source.Context, Timestamp: int64(p.Timestamp)}
	if p.Text != nil {
		l.Text = *p.Text
	}
	return l, nil
}

// decodeGo decodes one serialized remote value and converts it with Go.
func decodeGo(raw json.RawMessage) (any, error) {
	var v RemoteValue
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	return v.Go()
}
