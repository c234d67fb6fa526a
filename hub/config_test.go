package hub

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/onionchat/onionchat/internal/setting"
)

// The zero Config is the defaults, and the defaults are limits an owner
// may set.
func TestZeroConfigIsDefaults(t *testing.T) {
	d := Config{}.WithDefaults()
	if err := d.Validate(); err != nil {
		t.Fatalf("the defaults: %v", err)
	}
	got := New(Config{}).Limits()
	got.Wire, got.Logger = nil, nil
	if !reflect.DeepEqual(got, d) {
		t.Errorf("New(Config{}) uses\n  %+v\nWithDefaults gives\n  %+v", got, d)
	}
}

// Validate names the key of the first limit out of range, as the
// configuration file spells it, zero included.
func TestValidateNamesKey(t *testing.T) {
	for _, tc := range []struct {
		change func(*Config)
		key    string
	}{
		{func(c *Config) { c.MaxConns = 0 }, "max_conns"},
		{func(c *Config) { c.MaxMembers = 1 }, "max_members"},
		{func(c *Config) { c.SendQueueBytes = c.MaxFrameBytes - 1 }, "send_queue_bytes"},
		{func(c *Config) { c.ByteRate = 100 }, "byte_rate"},
		{func(c *Config) { c.Rate = 0 }, "rate"},
		{func(c *Config) { c.JoinRate = 2e6 }, "join_rate"},
		{func(c *Config) { c.ResumeWindow = time.Millisecond }, "resume_window"},
		{func(c *Config) { c.PingInterval = 2 * time.Minute }, "idle_timeout"},
	} {
		c := Config{}.WithDefaults()
		tc.change(&c)
		var e *setting.Error
		if err := c.Validate(); !errors.As(err, &e) || e.Key != tc.key {
			t.Errorf("want an error about %s, got %v", tc.key, err)
		}
	}
}
