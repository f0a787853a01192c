package tlv

import (
	"testing"

	"github.com/go-rserpool/rserpool/internal/testutil"
)

// TestAppendAllocs: appending into a buffer with room allocates nothing.
func TestAppendAllocs(t *testing.T) {
	for name, m := range map[string]Message{
		"Registration":                registration(),
		"HandleResolutionResponse/16": hrr(16),
		"HandleTableResponse/128":     tableResponse(128),
	} {
		t.Run(name, func(t *testing.T) {
			buf := make([]byte, 0, m.Len())
			testutil.CheckAllocs(t, 0, func() { buf = m.AppendTo(buf[:0]) })
			if len(buf) != m.Len() {
				t.Fatalf("wrote %d, Len %d", len(buf), m.Len())
			}
		})
	}
}

// TestParseAllocs bounds the allocations of a parse by a constant
// independent of the PE count. The bound is 5; a parse makes 3 today: the
// message with its overall policy, the PE slice and the shared address
// array (the parser state stays on the stack).
func TestParseAllocs(t *testing.T) {
	for _, n := range []int{1, 16, 128} {
		b := hrr(n).AppendTo(nil)
		testutil.CheckAllocs(t, 5, func() {
			if _, err := ParseASAP(b); err != nil {
				t.Fatal(err)
			}
		})
	}
}
