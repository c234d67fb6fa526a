package tortest

import "os"

// EnvNetns marks the child that MainInNetns runs in the namespace.
const EnvNetns = "TORTEST_NETNS"

// Isolated reports whether this process is the MainInNetns child, running
// in a network namespace with loopback only.
func Isolated() bool { return os.Getenv(EnvNetns) == "1" }
