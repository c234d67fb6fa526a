package main

import (
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the scripts run the real onionchat command in-process.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"onionchat": main})
}

// TestScripts runs testdata/script/*.txtar: the command-line surface as
// an owner meets it.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/script"})
}
