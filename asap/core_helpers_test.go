package asap

import (
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func memAddr(s string) transport.Addr {
	return transport.Addr{Kind: transport.KindMem, AddrPort: netip.MustParseAddrPort(s)}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func seeded() rand.Source { return rand.NewPCG(1, 2) }

// wire sends m through the codec, as a driver would: the cores must only
// emit messages that encode, and must accept what the parser returns.
func wire(t testing.TB, m tlv.ASAPMessage) tlv.ASAPMessage {
	t.Helper()
	b, err := tlv.Marshal(m)
	if err != nil {
		t.Fatalf("marshal %T: %v", m, err)
	}
	p, err := tlv.ParseASAP(b)
	if err != nil {
		t.Fatalf("parse %T: %v", m, err)
	}
	return p
}

// outputs of one kind, of a core's outputs (Output) or a session core's
// (SessionOutput).
func only[T any, O any](outs []O) []T {
	var r []T
	for _, o := range outs {
		if v, ok := any(o).(T); ok {
			r = append(r, v)
		}
	}
	return r
}

// sent returns the messages of type M sent, with their associations, after
// a trip through the codec.
func sent[M tlv.ASAPMessage](t testing.TB, outs []Output) ([]M, []AssocID) {
	t.Helper()
	var ms []M
	var as []AssocID
	for _, s := range only[Send](outs) {
		if m, ok := wire(t, s.Msg).(M); ok {
			ms = append(ms, m)
			as = append(as, s.Assoc)
		}
	}
	return ms, as
}

func oneConnect(t testing.TB, outs []Output) Connect {
	t.Helper()
	cs := only[Connect](outs)
	if len(cs) != 1 {
		t.Fatalf("want 1 Connect, got %d in %v", len(cs), outs)
	}
	return cs[0]
}

type netipAddr = netip.Addr

func mustAddr(s string) netip.Addr         { return netip.MustParseAddr(s) }
func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

var peRegs = []transport.Addr{memAddr("10.0.0.1:3863")}
