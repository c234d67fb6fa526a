package web_test

import (
	"errors"
	"testing"

	"github.com/onionchat/onionchat/internal/setting"
	"github.com/onionchat/onionchat/web"
)

// The zero Config's settings are the defaults, an owner may set them,
// and a value out of range is named by its key.
func TestConfigDefaultsValid(t *testing.T) {
	d := web.Config{}.WithDefaults()
	if d.HandshakeTimeout != web.DefaultHandshakeTimeout {
		t.Errorf("handshake timeout %v, want %v", d.HandshakeTimeout, web.DefaultHandshakeTimeout)
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("the defaults: %v", err)
	}
	var e *setting.Error
	if err := (web.Config{}).Validate(); !errors.As(err, &e) || e.Key != "handshake_timeout" {
		t.Errorf("zero handshake timeout: %v", err)
	}
}
