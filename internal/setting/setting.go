// Package setting is what the parts' settings types (hub.Config,
// web.Config, onion.Config, cluster.Config) share with the configuration
// file: the error a part's Validate returns about one setting, named as
// the file spells it within the part's section, and the range checks
// that word those errors alike.
//
// It knows nothing of files: internal/config reads them, and turns an
// *Error into one that names the file, the line and the section.
package setting

import (
	"fmt"
	"strings"
	"time"
)

// Error is a setting its part refuses.
type Error struct {
	Key string // as the configuration file spells it in the part's section, such as "max_conns"
	Msg string // what is wrong and what is wanted
}

func (e *Error) Error() string { return e.Key + ": " + e.Msg }

// Errorf returns an *Error about key.
func Errorf(key, format string, args ...any) error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Range returns an *Error about key unless lo <= v <= hi: "want lo to
// hi, not v". Zero is checked like any other value: Validate checks the
// settings as an owner gives them, and an owner who writes 0 means
// something (none, no limit) that no default is.
func Range[T int | time.Duration](key string, v, lo, hi T) error {
	if v >= lo && v <= hi {
		return nil
	}
	if d, ok := any(v).(time.Duration); ok {
		return Errorf(key, "want %s to %s, not %v", short(time.Duration(lo)), short(time.Duration(hi)), d)
	}
	return Errorf(key, "want %d to %d, not %d", lo, hi, v)
}

// Timeout is Range over the span every timeout or interval without a
// range of its own may take, 10ms to 720h (30 days): hub's
// ping_interval to resume_window, web's handshake_timeout.
func Timeout(key string, d time.Duration) error {
	return Range(key, d, 10*time.Millisecond, 30*24*time.Hour)
}

// short writes a round duration as an owner would: 720h, 10m, 2s.
func short(d time.Duration) string {
	s := d.String()
	for _, zero := range []string{"0s", "0m"} {
		if t := strings.TrimSuffix(s, zero); t != s && t != "" && (strings.HasSuffix(t, "m") || strings.HasSuffix(t, "h")) {
			s = t
		}
	}
	return s
}
