// Package qrterm draws QR codes with Unicode half blocks, for the owner's
// terminal: the onion address and client-auth keys, so a phone can scan
// them. Two rows of modules share one line of text.
package qrterm

import (
	"fmt"
	"strings"

	"rsc.io/qr"
)

// quiet is the margin of light modules around the code (the spec asks 4;
// 2 reads fine on screens and saves lines).
const quiet = 2

// Render returns text as a QR code drawn for a dark terminal background:
// light modules are drawn, dark ones left blank, as "qrencode -t UTF8"
// does. Each line ends with a newline.
func Render(text string) (string, error) {
	c, err := qr.Encode(text, qr.M)
	if err != nil {
		return "", fmt.Errorf("qrterm: %w", err)
	}
	light := func(x, y int) bool {
		if x < 0 || y < 0 || x >= c.Size || y >= c.Size {
			return true
		}
		return !c.Black(x, y)
	}
	var b strings.Builder
	for y := -quiet; y < c.Size+quiet; y += 2 {
		for x := -quiet; x < c.Size+quiet; x++ {
			top, bottom := light(x, y), light(x, y+1)
			switch {
			case top && bottom:
				b.WriteString("█")
			case top:
				b.WriteString("▀")
			case bottom:
				b.WriteString("▄")
			default:
				b.WriteString(" ")
			}
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}
