package wsread

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
)

func TestAppend(t *testing.T) {
	want := bytes.Repeat([]byte("0123456789"), 1000)
	buf := make([]byte, 0, 16)
	got, err := Append(buf[:0], iotest.OneByteReader(bytes.NewReader(want)))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Append: %d bytes, %v", len(got), err)
	}
	// The buffer is reused: a short message fits the grown one.
	again, err := Append(got[:0], bytes.NewReader([]byte("hi")))
	if err != nil || string(again) != "hi" || &again[0] != &got[0] {
		t.Fatalf("second Append: %q, %v, reused %v", again, err, &again[0] == &got[0])
	}
	boom := errors.New("boom")
	if _, err := Append(nil, io.MultiReader(bytes.NewReader(want[:5]), iotest.ErrReader(boom))); err != boom {
		t.Fatalf("error %v, want boom", err)
	}
}

// frames encodes test frames as a client would (masked), with payloads
// of every length class.
func testStream() (stream []byte, want [][3]int) {
	for i, n := range []int{0, 1, 125, 126, 200, 65535, 65536, 70000} {
		op := byte(i % 3) // continuation, text, binary
		fin := i%2 == 0
		b0 := op
		if fin {
			b0 |= 0x80
		}
		switch {
		case n < 126:
			stream = append(stream, b0, 0x80|byte(n))
		case n <= 0xffff:
			stream = append(stream, b0, 0x80|126, byte(n>>8), byte(n))
		default:
			stream = append(stream, b0, 0x80|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
		}
		stream = append(stream, 9, 8, 7, 6)
		stream = append(stream, bytes.Repeat([]byte{0x81}, n)...) // payload that looks like headers
		f := 0
		if fin {
			f = 1
		}
		want = append(want, [3]int{int(op), f, n})
	}
	return stream, want
}

func TestMeter(t *testing.T) {
	stream, want := testStream()
	for _, piece := range []int{1, 2, 3, 7, 1000, len(stream)} {
		var m Meter
		var got [][3]int
		for s := stream; len(s) > 0; {
			k := min(piece, len(s))
			m.Scan(s[:k], func(op byte, fin bool, size uint64) error {
				f := 0
				if fin {
					f = 1
				}
				got = append(got, [3]int{int(op), f, int(size)})
				return nil
			})
			s = s[k:]
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("pieces of %d: frames %v, want %v", piece, got, want)
		}
	}
	boom := errors.New("boom")
	var m Meter
	if err := m.Scan(stream, func(byte, bool, uint64) error { return boom }); err != boom {
		t.Fatalf("error %v, want boom", err)
	}
}

// FuzzMeter: however a stream is cut, the Meter finds the same frames,
// and it never panics on garbage.
func FuzzMeter(f *testing.F) {
	stream, _ := testStream()
	f.Add(stream[:300], 5)
	f.Add([]byte{0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 3)
	f.Fuzz(func(t *testing.T, b []byte, piece int) {
		if piece <= 0 {
			piece = 1
		}
		var whole, cut Meter
		var a, c []byte
		whole.Scan(b, func(op byte, _ bool, _ uint64) error { a = append(a, op); return nil })
		for s := b; len(s) > 0; {
			k := min(piece, len(s))
			cut.Scan(s[:k], func(op byte, _ bool, _ uint64) error { c = append(c, op); return nil })
			s = s[k:]
		}
		if !bytes.Equal(a, c) || whole != cut {
			t.Fatalf("whole %v, in pieces of %d %v", a, piece, c)
		}
	})
}
