package sctp_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/internal/direct"
	"github.com/go-rserpool/rserpool/internal/direct/directtest"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/sctp"
	"github.com/go-rserpool/rserpool/transport/transporttest"
)

func factory(ip string) transporttest.Factory {
	return func(t testing.TB) (client, server transport.Transport, listenAt transport.Addr) {
		tr := sctp.New(sctp.Config{})
		return tr, tr, transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.AddrPortFrom(netip.MustParseAddr(ip), 0)}
	}
}

func TestConformance(t *testing.T) {
	transporttest.Run(t, factory("127.0.0.1"))
}

func TestConformanceIPv6(t *testing.T) {
	if !hasIPv6Loopback() {
		t.Skip("no IPv6 loopback (::1) on this machine")
	}
	transporttest.Run(t, factory("::1"))
}

// TestDirect checks the fast paths the driver loop uses (TrySend, SetPush
// and Resume of package direct) over loopback SCTP.
func TestDirect(t *testing.T) {
	directtest.Run(t, directtest.Factory(factory("127.0.0.1")), 20*time.Second)
}

// TestTrySendFullBuffer: with more than Config.SendBuffer bytes of a
// stream unacknowledged TrySend sends nothing and says so, where Send
// would wait; and what it did send arrives complete and in order.
func TestTrySendFullBuffer(t *testing.T) {
	tr := sctp.New(sctp.Config{SendBuffer: 4096})
	pair := directtest.Factory(func(testing.TB) (transport.Transport, transport.Transport, transport.Addr) {
		return tr, tr, transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("127.0.0.1:0")}
	})
	a, b := pair(t)
	s := a.(direct.Sender)
	msg := make([]byte, 1024)
	sent, refused := 0, 0
	for range 10000 {
		msg[0] = byte(sent)
		ok, err := s.TrySend(transport.Message{PPID: 11, Data: msg})
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			refused++
			break
		}
		sent++
	}
	if refused == 0 {
		t.Fatalf("%d messages of 1 KiB taken without a refusal; send buffer is 4 KiB", sent)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range sent {
		m, err := b.Recv(ctx)
		if err != nil {
			t.Fatalf("message %d of %d: %v", i, sent, err)
		}
		if len(m.Data) != len(msg) || m.Data[0] != byte(i) {
			t.Fatalf("message %d: %d bytes, first %d", i, len(m.Data), m.Data[0])
		}
	}
	t.Logf("%d sent before the first refusal", sent)
}
