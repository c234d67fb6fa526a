package main

import (
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the scripts run the real onionchat-bench command
// in-process.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"onionchat-bench": main})
}

// TestScripts runs testdata/script/*.txtar: the command line as a
// maintainer meets it. The runs themselves are the test command's bench
// and soak steps.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/script"})
}
