package onion

import (
	"os"
	"strings"
	"testing"
)

// readDescriptor reads a descriptor that a tor 0.4.9.11 of a private test
// network built (GETINFO hs/service/desc/id/), with the address it is for
// on its first line.
func readDescriptor(t *testing.T, name string) (addr, desc string) {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	first, rest, _ := strings.Cut(string(b), "\n")
	return strings.TrimPrefix(first, "# address "), rest
}

// TestDescriptorOpen: the descriptor of a service without client keys is
// readable with its address alone; that of a service with one is not.
func TestDescriptorOpen(t *testing.T) {
	for file, wantOpen := range map[string]bool{"descriptor-open.txt": true, "descriptor-clientauth.txt": false} {
		addr, desc := readDescriptor(t, file)
		pub, err := addressKey(addr)
		if err != nil {
			t.Fatal(err)
		}
		open, err := descriptorOpen(desc, pub)
		if err != nil || open != wantOpen {
			t.Errorf("%s: open = %v, %v; want %v", file, open, err, wantOpen)
		}
	}
	// Another service's key does not read the outer layer: nothing is
	// known, which is an error, never "open".
	addrA, descA := readDescriptor(t, "descriptor-open.txt")
	addrB, _ := readDescriptor(t, "descriptor-clientauth.txt")
	pubB, _ := addressKey(addrB)
	if open, err := descriptorOpen(descA, pubB); err == nil {
		t.Fatalf("%s's descriptor read with %s's key: open = %v", addrA, addrB, open)
	}
	for _, cut := range []string{"revision-counter", "superencrypted", "descriptor-signing-key-cert"} {
		broken := strings.Replace(descA, cut, "x-"+cut, 1)
		if _, err := descriptorOpen(broken, pubB); err == nil {
			t.Errorf("a descriptor without %s was read", cut)
		}
	}
}
