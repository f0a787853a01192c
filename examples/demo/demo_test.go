package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
)

// TestDemo runs the demo as `go run ./examples/demo` does, over real
// loopback SCTP, and checks that every step of its trace happened: round
// robin over three PEs, failover from the crashed and the hung PE, their
// removal by the registrar (association loss, keep-alive timeout), the
// ENRP scene (three registrars peering; r1, home of two PEs, going down
// silently; a survivor taking them over, the other acknowledging; the PEs
// adopting the new home; the pool user served on), the session scene (a
// counter kept in sealed cookies carried over a PE's crash to the PE its
// business card names, the request in flight answered there; a forged
// cookie refused), and a clean end with no goroutine left behind. The
// demo itself fails when a counter comes back wrong (state lost or
// applied twice).
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("real SCTP over loopback, about 4 s")
	}
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(t.Context(), maxDuration)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"answered by pe-1", "answered by pe-2", "answered by pe-3",
		"pool user: cannot reach pe-2",             // the crashed PE: dial fails, failover
		"registrar: removed pe-2",                  // ... and removed
		"did not answer request C",                 // the hung PE: request times out, failover
		"registrar: removed pe-3",                  // ... and removed
		"no answer to a keep-alive",                // ... by keep-alive supervision
		"a new pool user resolves \"echo\": 1 PE",  // only pe-1 left
		"registrar: removed pe-1: it deregistered", // told by the registrar's event
		"r1: peer r2 up", "r3: peer r1 up",         // ENRP peering (RFC 5353 §3.2)
		"r1 and r2 each hold all 3 PEs",                           // handle updates (§3.6)
		"joined through mentor r1",                                // the late registrar's table (§3.4-3.5)
		"goes DOWN silently",                                      // r1's host down: no ABORT
		"peer r1 DOWN (home of 2 PE(s) here)",                     // seen by the winner by r1's silence (§3.3)
		"takeover of r1 started (INIT_TAKEOVER to every peer)",    // §3.9
		"takeover of r1 done: home of its 2 PE(s) now",            // ... every peer acknowledged
		"took over r1's 2 PEs",                                    // exactly one winner
		"r1 DOWN here too, out of its peer list: it acknowledged", // the other survivor's view
		"pe-a: home changed to", "pe-c: home changed to",          // the PEs adopt the new home (PEEventHomeChanged)
		"the pool user carries on: all 3 PEs still served through r3", // the PU served on
		"gave the session its business card (ASAP_BUSINESS_CARD)",     // RFC 5352 §3.11
		"request #4 answered by pe-s", "CRASHES with request #5 in flight",
		"counter=4 restored on pe-s",                                                           // the new PE opened the echoed cookie (§3.10)
		"session FAILED OVER from pe-s", "its business card's first choice: ", "failover took", // reason: association lost (or, were the ABORT lost, request timeout)
		"the cookie echoed first (ASAP_COOKIE_ECHO), 1 request(s) sent again",
		"request #5 answered by pe-s", "counter=5", "after pe-s", "crash to first answer on the new PE",
		"request #7 answered by pe-s", "counter=7",
		"state carried over: counter=7 after 7 requests",
		"REFUSES the cookie echoed by", "cookie: authentication failed", // cookie.ErrTampered
		"no answer: the forged counter was never used",
		"Demo OK",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("trace lacks %q", want)
		}
	}
}
