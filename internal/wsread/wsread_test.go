package wsread

import (
	"bytes"
	"errors"
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
