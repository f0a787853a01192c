package enrp

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/handlespace"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// FuzzCoreENRP feeds random ENRP bytes from three peers (and the multicast
// group) into a Core that also holds PEs of its own: nothing panics, every
// message it sends encodes and parses, its own PEs are touched by no
// peer, and the store's counts and per-home checksums stay right.
const (
	fzSelf     = 0x5e1f0001
	fzPeers    = 3 // ops 0..2: ENRP bytes from peer association op+2
	fzPresence = 3 // a valid Presence from peer b[0]%3 with checksum b[1:3]
	fzTimeout  = 4 // advance 100 ms × b[0], run the timers
	fzLose     = 5 // peer association b[0]%3 lost and accepted again
	fzRegister = 6 // register own PE b[0] over ASAP association 1
	fzMulti    = 7 // multicast datagram
	fzOps      = 8
	fzMaxPEs   = 48
	fzPerPeer  = 12
)

func fzPeerID(i int) uint32 { return 0x1001 + uint32(i) }

func fzInfo(i int) AssocInfo {
	return AssocInfo{Remote: transport.Addr{Kind: transport.KindMem, AddrPort: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 7, 0, byte(i + 1)}), 9901)}}
}

func fzPE(id uint32, home uint32) tlv.PoolElement {
	return tlv.PoolElement{
		ID: id, HomeServerID: home, RegistrationLife: 5000,
		UserTransport: tlv.NewSCTPTransport(7000, tlv.TransportUseDataOnly, netip.MustParseAddr("10.7.1.1")),
		ASAPTransport: tlv.NewSCTPTransport(4000, tlv.TransportUseDataOnly, netip.MustParseAddr("10.7.1.1")),
		Policy:        policy.Encode(policy.RoundRobin, policy.Values{}),
	}
}

func fzSeeds() [][]byte {
	var out [][]byte
	add := func(op byte, m tlv.Message) { out = append(out, frame(op, m.AppendTo(nil))) }
	h := tlv.PoolHandle("pool")
	for i := range fzPeers {
		hd := tlv.ENRPHeader{SenderID: fzPeerID(i), ReceiverID: fzSelf}
		add(byte(i), &tlv.Presence{ENRPHeader: hd, ReplyRequired: true, Checksum: 0xffff, Info: &tlv.ServerInfo{ServerID: fzPeerID(i), Transport: tlv.NewSCTPTransport(9901, 0, fzInfo(i).Remote.AddrPort.Addr())}})
		add(byte(i), &tlv.HandleUpdate{ENRPHeader: hd, Action: tlv.UpdateAddPE, PoolHandle: h, PE: fzPE(0x100+uint32(i), fzPeerID(i))})
		add(byte(i), &tlv.HandleUpdate{ENRPHeader: hd, Action: tlv.UpdateAddPE, PoolHandle: h, PE: fzPE(7, fzSelf)})
		add(byte(i), &tlv.HandleUpdate{ENRPHeader: hd, Action: tlv.UpdateDelPE, PoolHandle: h, PE: fzPE(7, fzSelf)})
		add(byte(i), &tlv.HandleTableRequest{ENRPHeader: hd, OwnChildrenOnly: i == 1})
		add(byte(i), &tlv.HandleTableResponse{ENRPHeader: hd, MoreToSend: i == 0, Pools: []tlv.PoolEntry{{PoolHandle: h, PEs: []tlv.PoolElement{fzPE(0x200, fzPeerID(i)), fzPE(7, fzSelf)}}}})
		add(byte(i), &tlv.ListRequest{ENRPHeader: hd})
		add(byte(i), &tlv.ListResponse{ENRPHeader: hd, Servers: []tlv.ServerInfo{{ServerID: 0x2002, Transport: tlv.NewSCTPTransport(9901, 0, netip.MustParseAddr("10.7.9.9"))}}})
		add(byte(i), &tlv.InitTakeover{ENRPHeader: hd, TargetID: fzPeerID((i + 1) % fzPeers)})
		add(byte(i), &tlv.TakeoverServer{ENRPHeader: hd, TargetID: fzPeerID((i + 1) % fzPeers)})
		add(byte(i), &tlv.ENRPError{ENRPHeader: hd, Error: *tlv.NewOperationError(tlv.CauseInvalidValues, nil)})
	}
	reg, _ := tlv.Marshal(&tlv.Registration{PoolHandle: h, PE: fzPE(7, 0)})
	out = append(out, frame(fzRegister, reg))
	out = append(out, frame(fzPresence, []byte{1, 0x12, 0x34}))
	out = append(out, frame(fzTimeout, []byte{200}))
	out = append(out, frame(fzLose, []byte{2}))
	out = append(out, frame(0, []byte{0x0b, 0, 0, 12, 0, 0, 0x10, 1, 0, 0, 0, 0}))
	return out
}

func FuzzCoreENRP(f *testing.F) {
	seeds := fzSeeds()
	var all []byte
	for _, s := range seeds {
		f.Add(s)
		all = append(all, s...)
	}
	f.Add(all)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := NewCore(Config{
			ServerID:    fzSelf,
			ASAP:        ASAPConfig{AssocRate: Unlimited, KeepAliveInterval: time.Second, KeepAliveTimeout: time.Second},
			Handlespace: handlespace.Config{MaxPEs: fzMaxPEs},
			Peers: PeersConfig{
				Static:        []transport.Addr{fzInfo(0).Remote},
				ENRPAddrs:     []transport.Addr{fzInfo(9).Remote},
				MaxPEsPerPeer: fzPerPeer, MaxPeers: 4, PageSize: 3,
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		c.HandleAccepted(now, 1, AssocInfo{Remote: transport.Addr{Kind: transport.KindMem, AddrPort: netip.MustParseAddrPort("10.7.1.1:4000")}})
		for i := range fzPeers {
			c.HandleAccepted(now, AssocID(i+2), fzInfo(i))
		}
		c.HandleTimeout(now)
		dials := map[AssocID]bool{}
		for len(data) >= 3 {
			op := data[0]
			n := min(int(binary.BigEndian.Uint16(data[1:])), len(data)-3)
			b := data[3 : 3+n]
			data = data[3+n:]
			var arg byte
			if len(b) > 0 {
				arg = b[0]
			}
			switch op % fzOps {
			case 0, 1, 2:
				c.HandleENRP(now, AssocID(op%fzOps+2), b)
			case fzPresence:
				i := int(arg % fzPeers)
				var sum uint16
				if len(b) >= 3 {
					sum = binary.BigEndian.Uint16(b[1:])
				}
				m := &tlv.Presence{ENRPHeader: tlv.ENRPHeader{SenderID: fzPeerID(i)}, Checksum: sum}
				c.HandleENRP(now, AssocID(i+2), m.AppendTo(nil))
			case fzTimeout:
				now = now.Add(100 * time.Millisecond * time.Duration(arg))
				c.HandleTimeout(now)
			case fzLose:
				a := AssocID(arg%fzPeers + 2)
				c.HandleLost(now, a)
				c.HandleAccepted(now, a, fzInfo(int(a-2)))
			case fzRegister:
				pe := fzPE(uint32(arg)+1, 0)
				m, _ := tlv.Marshal(&tlv.Registration{PoolHandle: tlv.PoolHandle("pool"), PE: pe})
				c.HandleASAP(now, 1, m)
			case fzMulti:
				c.HandleENRPMulticast(now, fzInfo(1).Remote, b)
			}
			for _, o := range c.Outbox() {
				switch o := o.(type) {
				case SendENRP:
					if o.Assoc < 2 || (o.Assoc > fzPeers+1 && o.Assoc < firstCoreAssoc) {
						t.Fatalf("ENRP to association %d", o.Assoc)
					}
					if o.Assoc >= firstCoreAssoc && !dials[o.Assoc] {
						t.Fatalf("ENRP on association %d never dialled", o.Assoc)
					}
					if _, err := tlv.ParseENRP(o.Msg.AppendTo(nil)); err != nil {
						t.Fatalf("sent %T does not parse: %v", o.Msg, err)
					}
				case SendASAP:
					if _, err := tlv.ParseASAP(o.Msg.AppendTo(nil)); err != nil {
						t.Fatalf("sent %T does not parse: %v", o.Msg, err)
					}
				case ConnectPeer:
					dials[o.Assoc] = true
					if o.Assoc < firstCoreAssoc {
						t.Fatalf("dial with host-range ID %d", o.Assoc)
					}
				}
			}
			fzCheckStore(t, c)
			if len(c.Peers()) > 4 {
				t.Fatalf("%d peers, bound 4", len(c.Peers()))
			}
		}
	})
}

// fzCheckStore: pool counts add up, our PEs are exactly the supervised
// ones, and every home's incremental checksum equals a fresh one.
func fzCheckStore(t *testing.T, c *Core) {
	total := 0
	homes := map[uint32]uint64{}
	counts := map[uint32]int{}
	c.store.ForEachPool(func(p handlespace.PoolInfo) bool {
		total += p.PEs
		c.store.ForEachPE(p.Handle, func(pe tlv.PoolElement, _ handlespace.Info) bool {
			if pe.HomeServerID == 0 {
				t.Fatalf("PE %d without home", pe.ID)
			}
			var s uint64
			h := p.Handle
			for i := 0; i < len(h); i += 2 {
				w := uint64(h[i]) << 8
				if i+1 < len(h) {
					w |= uint64(h[i+1])
				}
				s += w
			}
			homes[pe.HomeServerID] += s + uint64(pe.ID>>16) + uint64(pe.ID&0xffff)
			counts[pe.HomeServerID]++
			return true
		})
		return true
	})
	if total != c.store.PEs() || total > fzMaxPEs || len(c.sup) != c.store.Owned(fzSelf) {
		t.Fatalf("counts: %d in pools, %d PEs, %d owned, %d supervised", total, c.store.PEs(), c.store.Owned(fzSelf), len(c.sup))
	}
	for home, sum := range homes {
		for sum>>16 != 0 {
			sum = sum&0xffff + sum>>16
		}
		if got := c.store.Checksum(home); got != ^uint16(sum) || c.store.Owned(home) != counts[home] {
			t.Fatalf("home %#x: checksum %04x, recomputed %04x; owned %d, counted %d", home, got, ^uint16(sum), c.store.Owned(home), counts[home])
		}
	}
	for k := range c.sup {
		pe, _, ok := c.store.Lookup(tlv.PoolHandle(k.handle), k.id)
		if !ok || pe.HomeServerID != fzSelf {
			t.Fatalf("own PE %v gone or moved (home %#x)", k, pe.HomeServerID)
		}
	}
}
