package sctp_test

import (
	"net/netip"
	"testing"

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
