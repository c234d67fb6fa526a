package bidi

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRemoteValueGo(t *testing.T) {
	cases := []struct {
		json string
		want string // fmt %#v of the converted value
	}{
		{`{"type":"undefined"}`, `<nil>`},
		{`{"type":"null"}`, `<nil>`},
		{`{"type":"string","value":"hi"}`, `"hi"`},
		{`{"type":"number","value":3}`, `3`},
		{`{"type":"number","value":-0.5}`, `-0.5`},
		{`{"type":"number","value":"Infinity"}`, `+Inf`},
		{`{"type":"boolean","value":false}`, `false`},
		{`{"type":"bigint","value":"-42"}`, `-42`},
		{`{"type":"date","value":"2024-01-02T03:04:05.000Z"}`, `"2024-01-02T03:04:05.000Z"`},
		{`{"type":"regexp","value":{"pattern":"a+","flags":"g"}}`, `"/a+/g"`},
		{`{"type":"array","value":[{"type":"number","value":1},{"type":"array","value":[{"type":"null"}]}]}`, `[]interface {}{1, []interface {}{interface {}(nil)}}`},
		{`{"type":"set","value":[{"type":"string","value":"a"}]}`, `[]interface {}{"a"}`},
		{`{"type":"object","value":[["k",{"type":"string","value":"v"}],["n",{"type":"object","value":[]}]]}`, `map[string]interface {}{"k":"v", "n":map[string]interface {}{}}`},
		{`{"type":"map","value":[[{"type":"number","value":1},{"type":"boolean","value":true}]]}`, `map[string]interface {}{"1":true}`},
		{`{"type":"object","internalId":"3"}`, `<nil>`},
		{`{"type":"node","sharedId":"abc","value":{"nodeType":1}}`, `bidi.Object{Type:"node", SharedID:"abc"}`},
		{`{"type":"function","handle":"h"}`, `bidi.Object{Type:"function", SharedID:""}`},
	}
	for _, c := range cases {
		var rv RemoteValue
		if err := json.Unmarshal([]byte(c.json), &rv); err != nil {
			t.Fatal(err)
		}
		v, err := rv.Go()
		if err != nil {
			t.Errorf("%s: %v", c.json, err)
			continue
		}
		got := fmt.Sprintf("%#v", v)
		if b, ok := v.(*big.Int); ok {
			got = b.String()
		}
		if f, ok := v.(float64); ok {
			got = fmt.Sprint(f)
		}
		if got != c.want {
			t.Errorf("%s\n got %s\nwant %s", c.json, got, c.want)
		}
	}

	for _, s := range []string{"NaN", "-0"} {
		v, err := RemoteValue{Type: "number", Value: json.RawMessage(`"` + s + `"`)}.Go()
		f, _ := v.(float64)
		if err != nil || (s == "NaN") != math.IsNaN(f) || (s == "-0") != (f == 0 && math.Signbit(f)) {
			t.Errorf("number %s: %v %v", s, v, err)
		}
	}
	for _, bad := range []string{
		`{"type":"number","value":"lots"}`,
		`{"type":"bigint","value":"1.5"}`,
		`{"type":"string","value":7}`,
		`{"type":"array","value":[{"type":"number","value":"x"}]}`,
	} {
		var rv RemoteValue
		json.Unmarshal([]byte(bad), &rv)
		if v, err := rv.Go(); err == nil {
			t.Errorf("%s: no error, got %#v", bad, v)
		}
	}
}

func TestTruthy(t *testing.T) {
	for _, v := range []any{true, "x", 1.0, -1.0, big.NewInt(2), []any{}, map[string]any{}, Object{Type: "node"}} {
		if !Truthy(v) {
			t.Errorf("Truthy(%#v) = false", v)
		}
	}
	for _, v := range []any{nil, false, "", 0.0, math.Copysign(0, -1), math.NaN(), big.NewInt(0)} {
		if Truthy(v) {
			t.Errorf("Truthy(%#v) = true", v)
		}
	}
}

func TestJS(t *testing.T) {
	if got := JS(`a "quoted" </script> & 'x'` + "\u2028"); got != `"a \"quoted\" </script> & 'x'\u2028"` {
		t.Errorf("JS string: %s", got)
	}
	if got := JS(map[string]any{"n": 1, "l": []int{2}}); got != `{"l":[2],"n":1}` {
		t.Errorf("JS object: %s", got)
	}
}

func TestParseEvents(t *testing.T) {
	m, err := parseMessage(json.RawMessage(`{"channel":"csp","data":{"type":"object","value":[["n",{"type":"number","value":1}]]},"source":{"realm":"r","context":"c1"}}`))
	if err != nil || m.Channel != "csp" || m.Context != "c1" || fmt.Sprint(m.Data) != "map[n:1]" {
		t.Errorf("message %+v %v", m, err)
	}
	l, err := parseLogEntry(json.RawMessage(`{"type":"console","method":"error","level":"error","text":"boom","timestamp":1700000000000.5,"source":{"realm":"r","context":"c2"},"args":[]}`))
	if err != nil || l.Level != "error" || l.Text != "boom" || l.Context != "c2" || l.Timestamp != 1700000000000 {
		t.Errorf("log entry %+v %v", l, err)
	}
	if l.String() != "console error: boom" {
		t.Errorf("log entry string %q", l.String())
	}
}

func TestUserJS(t *testing.T) {
	dir := t.TempDir()
	err := writeUserJS(dir, true, map[string]any{
		"services.settings.server": "http://127.0.0.1:1/",
		"test.quote":               `a"b\c`,
		"test.int":                 int64(-3),
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "user.js"))
	if err != nil {
		t.Fatal(err)
	}
	js := string(raw)
	for _, want := range []string{
		`user_pref("javascript.options.wasm", false);`,
		`user_pref("services.settings.server", "http://127.0.0.1:1/");`, // extra wins
		`user_pref("test.quote", "a\"b\\c");`,
		`user_pref("test.int", -3);`,
		`user_pref("app.update.disabledForTesting", true);`,
		`user_pref("network.captive-portal-service.enabled", false);`,
		`user_pref("network.dns.disablePrefetch", true);`,
	} {
		if !strings.Contains(js, want+"\n") {
			t.Errorf("user.js lacks %s", want)
		}
	}
	if strings.Count(js, `"services.settings.server"`) != 1 {
		t.Error("services.settings.server set twice")
	}
	// No preference may point anywhere but this machine.
	for _, line := range strings.Split(js, "\n") {
		if strings.Contains(line, "://") && !strings.Contains(line, "://127.0.0.1") {
			t.Errorf("non-local URL: %s", line)
		}
	}

	if err := writeUserJS(t.TempDir(), false, nil); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []any{1.5, []string{"x"}, nil} {
		if err := writeUserJS(t.TempDir(), false, map[string]any{"x": bad}); err == nil {
			t.Errorf("preference value %#v accepted", bad)
		}
	}
}
