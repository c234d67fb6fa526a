package setting

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestRange(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{Range("max_conns", 0, 1, 1<<24), "max_conns: want 1 to 16777216, not 0"},
		{Range("max_conns", -3, 1, 10), "max_conns: want 1 to 10, not -3"},
		{Range("ping_interval", time.Millisecond, 10*time.Millisecond, 720*time.Hour), "ping_interval: want 10ms to 720h, not 1ms"},
		{Range("dead_after", time.Hour, 2*time.Second, 10*time.Minute), "dead_after: want 2s to 10m, not 1h0m0s"},
		{Range("publish_timeout", 0, time.Second, time.Hour), "publish_timeout: want 1s to 1h, not 0s"},
		{Range("t", 0, 30*time.Second, 90*time.Minute), "t: want 30s to 1h30m, not 0s"},
	} {
		var e *Error
		if !errors.As(tc.err, &e) || tc.err.Error() != tc.want {
			t.Errorf("got %v, want %s", tc.err, tc.want)
		}
	}
	if err := Range("max_conns", 1, 1, 1); err != nil {
		t.Errorf("in range: %v", err)
	}
}

func TestTimeout(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string // "" if in range
	}{
		{0, "t: want 10ms to 720h, not 0s"},
		{10*time.Millisecond - 1, "t: want 10ms to 720h, not 9.999999ms"},
		{10 * time.Millisecond, ""},
		{720 * time.Hour, ""},
		{720*time.Hour + 1, "t: want 10ms to 720h, not 720h0m0.000000001s"},
	} {
		err := Timeout("t", tc.d)
		if got := fmt.Sprint(err); tc.want == "" && err != nil || tc.want != "" && got != tc.want {
			t.Errorf("Timeout(%v) = %v, want %q", tc.d, err, tc.want)
		}
	}
}
