package asap

import (
	"sync/atomic"
	"testing"
)

// offer never waits: with no channel nothing is sent or counted, an event
// with room is delivered, one that finds the channel full is dropped and
// counted (the EventsDropped of PEs, sessions and session servers).
func TestOfferNeverWaits(t *testing.T) {
	var dropped atomic.Uint64
	offer[int](nil, 1, &dropped)
	if d := dropped.Load(); d != 0 {
		t.Fatalf("nil channel: %d dropped, want 0", d)
	}
	ch := make(chan int, 1)
	offer(ch, 1, &dropped)
	offer(ch, 2, &dropped) // full
	if d := dropped.Load(); d != 1 {
		t.Fatalf("%d dropped, want 1", d)
	}
	if got := <-ch; got != 1 {
		t.Fatalf("delivered %d, want the first event", got)
	}
}
