package hub

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodeClientFrame(t *testing.T) {
	ok := []struct {
		in   string
		want clientFrame
	}{
		{`{"v":2,"type":"join","room":"r","name":"n"}`, clientFrame{V: 2, Type: "join", Room: "r", Name: "n"}},
		{`{"v":2,"type":"join","room":"r","name":"n","resume":"t","since":41,"id":1}`, clientFrame{V: 2, Type: "join", Room: "r", Name: "n", Resume: "t", Since: 41, ID: 1}},
		{` { "type" : "msg" , "v" : 2 , "body":"aGk=", "to":"b", "id": 42 } `, clientFrame{V: 2, Type: "msg", Body: []byte("aGk="), To: "b", ID: 42}},
		{`{"v":2,"type":"join","since":0}`, clientFrame{V: 2, Type: "join"}},
		{`{"v":2,"type":"join","since":9007199254740991}`, clientFrame{V: 2, Type: "join", Since: maxID}},
		{`{"v":2,"type":"join","room":"caf\u00e9 \ud83d\ude00","name":"a\"b\\c\/d\n"}`, clientFrame{V: 2, Type: "join", Room: "café 😀", Name: "a\"b\\c/d\n"}},
		{`{"v":1,"type":"join","room":"r","name":"n"}`, clientFrame{V: 1, Type: "join", Room: "r", Name: "n"}},
		{`{"v":3,"type":"x"}`, clientFrame{V: 3, Type: "x"}},
	}
	for _, tc := range ok {
		got, err := decodeClientFrame([]byte(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got.V != tc.want.V || got.Type != tc.want.Type || got.Room != tc.want.Room || got.Name != tc.want.Name ||
			string(got.Body) != string(tc.want.Body) || got.To != tc.want.To || got.ID != tc.want.ID || got.Resume != tc.want.Resume ||
			got.Since != tc.want.Since {
			t.Errorf("%s: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
	bad := []struct{ in, code, msg string }{
		{``, codeBadFrame, "not a JSON object"},
		{`null`, codeBadFrame, "not a JSON object"},
		{`{}`, codeBadFrame, "no type"},
		{`{"type":"ping"}`, codeBadVersion, "older version"},
		{`{"v":2,"type":"join","since":-1}`, codeBadFrame, "negative"},
		{`{"v":2,"type":"join","since":9007199254740992}`, codeBadFrame, `"since" must be an integer from 0`},
		{`{"v":2,"type":"join","since":"1"}`, codeBadFrame, "must be an integer"},
		{`{"v":2,"type":"ack","seq":1}`, codeBadFrame, `unknown field "seq"`},
		{`{"v":2,"type":"join","since":1.5}`, codeBadFrame, "must be an integer"},
		{`{"v":2,"type":"join","since":1,"since":2}`, codeBadFrame, "given twice"},
		{`{"v":1}`, codeBadFrame, "no type"},
		{`{"v":2,"type":"ping","Type":"x"}`, codeBadFrame, `unknown field "Type"`},
		{`{"v":2,"type":"ping","type":"msg"}`, codeBadFrame, "given twice"},
		{`{"v":"1","type":"ping"}`, codeBadFrame, "must be an integer"},
		{`{"v":1.0,"type":"ping"}`, codeBadFrame, "must be an integer"},
		{`{"v":-1,"type":"ping"}`, codeBadFrame, "negative"},
		{`{"v":01,"type":"ping"}`, codeBadFrame, "leading zero"},
		{`{"v":2,"type":"ping","id":0}`, codeBadFrame, "id"},
		{`{"v":2,"type":"ping","id":9007199254740992}`, codeBadFrame, "id"},
		{`{"v":2,"type":1}`, codeBadFrame, "must be a string"},
		{`{"v":2,"type":"ping",}`, codeBadFrame, "bad key"},
		{`{"v":2,"type":"ping"}{}`, codeBadFrame, "data after"},
		{`{"v":2,"type":"pi` + "\n" + `ng"}`, codeBadFrame, "control character"},
		{`{"v":2,"type":"\ud800"}`, codeBadFrame, "surrogate"},
		{`{"v":2,"type":"\x"}`, codeBadFrame, "bad escape"},
		{`{"v":2,"type":"ping"`, codeBadFrame, "expected"},
		{"{\"v\":1,\"type\":\"\xff\"}", codeBadEncoding, "UTF-8"},
		{`{"v":2,"type":"ping","name":["a"]}`, codeBadFrame, "must be a string"},
	}
	for _, tc := range bad {
		_, err := decodeClientFrame([]byte(tc.in))
		fe, ok := err.(*frameError)
		if !ok || fe.Code != tc.code || !strings.Contains(fe.Msg, tc.msg) {
			t.Errorf("%q: got %v, want %s containing %q", tc.in, err, tc.code, tc.msg)
		}
	}
}

func TestDecodeAllocatesLittle(t *testing.T) {
	for _, in := range [][]byte{
		[]byte(`{"v":2,"type":"msg","body":"` + strings.Repeat("QUJD", 100) + `","id":5}`),
		[]byte(`{"v":2,"type":"ping","id":12345}`),
	} {
		if n := testing.AllocsPerRun(100, func() { decodeClientFrame(in) }); n > 0 {
			t.Errorf("decoding %.30s… allocates %v times, want 0", in, n)
		}
	}
}

func TestValidBase64(t *testing.T) {
	for s, want := range map[string]bool{
		"": true, "aGk=": true, "aGk": false, "aA==": true, "a===": false, "aGk=aGk=": false,
		"ab+/": true, "ab-_": false, "ab c": false,
	} {
		if got := validBase64([]byte(s)); got != want {
			t.Errorf("validBase64(%q) = %v, want %v", s, got, want)
		}
	}
}

// FuzzDecodeClientFrame checks that the decoder never panics and that
// whatever it accepts, encoding/json reads the same way.
func FuzzDecodeClientFrame(f *testing.F) {
	for _, s := range []string{
		`{"v":2,"type":"join","room":"q0F3Zk1pT2xXbHlSVkE2Tg","name":"n","resume":"t","since":41,"id":3}`,
		`{"v":2,"type":"msg","body":"aGk=","to":"b","id":1}`,
		`{"v":2,"type":"msg","body":"aGk=","bulk":true}`, `{"v":2,"type":"msg","bulk":false}`, `{"v":2,"bulk":tru}`,
		`{"v":2,"type":"ack","seq":42}`,
		`{"v":2,"type":"ping","id":9}`,
		`{"v":2,"type":"commit","epoch":0,"body":"aGk=","info":"aW5mbw==","over":7,"id":2}`, `{"v":2,"type":"info"}`,
		`{"v":2,"type":"info","body":"aW5mbw=="}`, `{"v":2,"type":"commit","epoch":-1}`, `{"v":2,"over":0}`,
		`{"v":1,"type":"join","room":"r","name":"n"}`,
		`{"v":2,"type":"join","room":"\u00e9\ud83d\ude00","name":"\"\\\/\b\f\n\r\t"}`,
		`{"v":01}`, `{`, `[]`, `{"v":2,"type":"ping","v":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeClientFrame(b)
		if err != nil {
			if _, ok := err.(*frameError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("accepted %q, which encoding/json rejects: %v", b, err)
		}
		str := func(k string) string { s, _ := m[k].(string); return s }
		if got.Type != str("type") && len(str("type")) <= 32 || got.Room != str("room") || got.Name != str("name") ||
			got.Resume != str("resume") || string(got.Body) != str("body") || got.To != str("to") || string(got.Info) != str("info") {
			t.Fatalf("%q: decoded %+v, encoding/json says %v", b, got, m)
		}
		num := func(k string) int64 { n, _ := m[k].(float64); return int64(n) }
		if int64(got.V) != num("v") && num("v") < 1<<20 || got.Since != num("since") || got.ID != num("id") ||
			got.Epoch != num("epoch") || got.Over != num("over") {
			t.Fatalf("%q: decoded %+v, encoding/json says %v", b, got, m)
		}
		if bulk, _ := m["bulk"].(bool); bulk != got.Bulk {
			t.Fatalf("%q: Bulk %v, encoding/json says %v", b, got.Bulk, m)
		}
		if _, ok := m["epoch"]; ok != got.HasEpoch {
			t.Fatalf("%q: HasEpoch %v, encoding/json says %v", b, got.HasEpoch, m)
		}
	})
}

// FuzzAppendString checks that every string the hub echoes is JSON that
// decodes to itself.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "alice", `"\<>&`, "\x00\x1f\u2028", "名前 😀"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		b := appendString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil || back != s {
			t.Fatalf("appendString(%q) = %s, decodes to %q, %v", s, b, back, err)
		}
	})
}
