package enrp

import (
	"testing"

	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// RFC 5353 §6, RFC 5355 §3: with PeersConfig.Accept matching identities,
// a registrar whose association presents an unauthorised identity, or
// none, never becomes a peer, and nothing it sends changes the store: not
// its own handle updates, and not updates forged in an accepted peer's
// name (its association is checked again when it claims that peer's
// server ID). Control: without Accept the rogue is a peer and its
// updates are applied.
func TestENRPAcceptIdentity(t *testing.T) {
	type rig struct {
		r                *router
		b, g, rogue, nob *rnode
	}
	build := func(accept func(uint32, AssocInfo) error) rig {
		r := newRouter(t)
		b := r.add(0xb0b0b0b0, func(c *Config) { c.Peers.Accept = accept })
		b.ident = transport.Identity{Name: "b.reg.example.org"}
		static := func(c *Config) { c.Peers.Static = []transport.Addr{b.addr}; c.Peers.MentorTimeout = -1 }
		g := r.add(0x60606060, static)
		g.ident = transport.Identity{Name: "g.reg.example.org"}
		rogue := r.add(0xbad0bad0, static)
		rogue.ident = transport.Identity{Name: "rogue.example.com"}
		nob := r.add(0xa0a0a0a0, static) // unauthenticated
		r.pump()
		return rig{r, b, g, rogue, nob}
	}
	// forge feeds b, over the rogue's association, an ADD_PE and a DEL_PE
	// in the name of sender; it returns b's UpdatesApplied before and after.
	forge := func(x rig, sender uint32) (before, after uint64) {
		t.Helper()
		var bid AssocID
		for from, to := range x.r.links {
			if from.n == x.rogue && to.n == x.b {
				bid = to.id
			}
		}
		if bid == 0 {
			t.Fatal("no association from the rogue to b")
		}
		before = x.b.c.ENRPStats().UpdatesApplied
		add := rrPE(0x99, "10.4.0.1")
		add.HomeServerID = sender
		for _, hu := range []*tlv.HandleUpdate{
			{ENRPHeader: tlv.ENRPHeader{SenderID: sender, ReceiverID: x.b.c.ServerID()}, Action: tlv.UpdateAddPE, PoolHandle: tlv.PoolHandle("EchoPool"), PE: add},
			{ENRPHeader: tlv.ENRPHeader{SenderID: sender, ReceiverID: x.b.c.ServerID()}, Action: tlv.UpdateDelPE, PoolHandle: tlv.PoolHandle("EchoPool"), PE: tlv.PoolElement{ID: 1, HomeServerID: sender}},
		} {
			x.b.c.HandleENRP(x.r.now, bid, hu.AppendTo(nil))
			x.r.collect(x.b)
			x.r.pump()
		}
		return before, x.b.c.ENRPStats().UpdatesApplied
	}

	x := build(PeerMatcher("*.reg.example.org"))
	b := x.b
	if !hasPeer(b, x.g.c.ServerID()) || !hasPeer(x.g, b.c.ServerID()) {
		t.Fatalf("the authorised registrar is not a peer: b has %v", b.c.Peers())
	}
	if hasPeer(b, x.rogue.c.ServerID()) || hasPeer(b, x.nob.c.ServerID()) {
		t.Fatalf("a refused registrar entered b's table: %v", b.c.Peers())
	}
	if n := b.c.ENRPStats().PeersRefused; n < 2 {
		t.Fatalf("PeersRefused %d, want at least 2", n)
	}
	// The peer's PE reaches b; the refused registrars' do not.
	x.r.mustRegister(x.g, "EchoPool", 1)
	if _, _, ok := b.c.Lookup(tlv.PoolHandle("EchoPool"), 1); !ok {
		t.Fatal("the authorised peer's update was not applied")
	}
	x.r.mustRegister(x.rogue, "EchoPool", 2)
	x.r.mustRegister(x.nob, "EchoPool", 3)
	pes, sumG := b.c.store.PEs(), b.c.store.Checksum(x.g.c.ServerID())
	if pes != 1 {
		t.Fatalf("b holds %d PEs, want the peer's one", pes)
	}
	for _, sender := range []uint32{x.rogue.c.ServerID(), x.g.c.ServerID()} {
		if before, after := forge(x, sender); after != before {
			t.Fatalf("forged updates in the name of %08x applied: %d -> %d", sender, before, after)
		}
	}
	if b.c.store.PEs() != pes || b.c.store.Checksum(x.g.c.ServerID()) != sumG || hasPeer(b, x.rogue.c.ServerID()) {
		t.Fatal("the refused registrar changed b's store or table")
	}

	// Control: without the identity check the rogue is a peer, and the
	// same updates in its name are applied.
	y := build(nil)
	if !hasPeer(y.b, y.rogue.c.ServerID()) {
		t.Fatal("control: the rogue is not a peer without Accept")
	}
	if before, after := forge(y, y.rogue.c.ServerID()); after == before {
		t.Fatal("control: the forgery was not applied without Accept; the test proves nothing")
	}
	// Control: a hook that looks at server IDs only refuses the rogue
	// by its own ID, but not when it claims the peer's.
	z := build(func(id uint32, _ AssocInfo) error {
		if id == 0xbad0bad0 {
			return ErrNotAuthorized
		}
		return nil
	})
	z.r.mustRegister(z.g, "EchoPool", 1)
	if hasPeer(z.b, z.rogue.c.ServerID()) {
		t.Fatal("control: the server-ID hook let the rogue in")
	}
	if before, after := forge(z, z.g.c.ServerID()); after == before {
		t.Fatal("control: the forgery in the peer's name was refused without identities")
	}
}
