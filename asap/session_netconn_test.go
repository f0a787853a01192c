package asap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// tcpPE is a data-only PE on TCP loopback: it answers each framed message
// (NetConn framing) with "<PE ID>:<message>".
type tcpPE struct {
	id uint32
	l  net.Listener
	pe tlv.PoolElement
	wg sync.WaitGroup
	mu sync.Mutex
	cs []net.Conn
}

func startTCPPE(t *testing.T, id uint32) *tcpPE {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(l.Addr().String())
	p := &tcpPE{id: id, l: l}
	p.pe = testPE(id, policy.RoundRobin, policy.Values{})
	p.pe.UserTransport = tlv.Transport{Type: tlv.ParamTCPTransport, Port: ap.Port(), Use: tlv.TransportUseDataOnly, Addrs: []netip.Addr{ap.Addr()}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.cs = append(p.cs, c)
			p.mu.Unlock()
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				nc := NetConn(c)
				defer nc.Close()
				for {
					m, err := nc.Recv(context.Background())
					if err != nil {
						return
					}
					m.Data = fmt.Appendf(nil, "%d:%s", id, m.Data)
					if nc.Send(context.Background(), m) != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

// crash closes the listener and resets every connection.
func (p *tcpPE) crash() {
	p.l.Close()
	p.mu.Lock()
	for _, c := range p.cs {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // a reset, not a clean FIN (which the session takes as the PE ending it)
		}
		c.Close()
	}
	p.cs = nil
	p.mu.Unlock()
}

func (p *tcpPE) close() { p.crash(); p.wg.Wait() }

// The dial hook (SessionConfig.Dial) with NetConn reaches PEs whose user
// transport is TCP, data only: no COOKIE_ECHO goes there; when the PE dies
// the session reports it unreachable (RFC 5352 §3.5) and fails over to the
// next TCP PE, the request answered there. Over TCP loopback, with the
// registrar on memnet.
func TestSessionDialHookTCP(t *testing.T) {
	leakcheck.Check(t)
	n := memnet.New(5)
	defer n.Close()
	regNode := n.NewNode()
	regL, err := regNode.Listen(regNode.Addr(transport.PortASAP))
	if err != nil {
		t.Fatal(err)
	}
	reg := startFakeRegistrar(t, regL, 0xabc)
	defer reg.close()
	pes := []*tcpPE{startTCPPE(t, 1), startTCPPE(t, 2)}
	for _, p := range pes {
		defer p.close()
		reg.mu.Lock()
		reg.pes[p.id] = p.pe
		reg.mu.Unlock()
	}
	pu, err := NewPoolUser(PUConfig{Registrars: []transport.Addr{regL.Addr()}, Kind: transport.KindMem, Logger: testLogger(t)}, n.NewNode())
	if err != nil {
		t.Fatal(err)
	}
	defer pu.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var dialled []uint32
	var dmu sync.Mutex
	s, err := pu.Connect(ctx, []byte("echo"), SessionConfig{
		Cookie: []byte("never echoed to a data-only PE"),
		Dial: func(ctx context.Context, pe tlv.PoolElement) (transport.Conn, error) {
			dmu.Lock()
			dialled = append(dialled, pe.ID)
			dmu.Unlock()
			if pe.UserTransport.Type != tlv.ParamTCPTransport || len(pe.UserTransport.Addrs) == 0 {
				return nil, errors.New("not a TCP PE")
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(pe.UserTransport.Addrs[0], pe.UserTransport.Port).String())
			if err != nil {
				return nil, err
			}
			return NetConn(c), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first, _ := s.PE()
	m, err := s.Request(ctx, transport.Message{Data: []byte("hello")})
	if err != nil || string(m.Data) != fmt.Sprintf("%d:hello", first.ID) {
		t.Fatalf("Request: %q, %v", m.Data, err)
	}
	pes[first.ID-1].crash()
	m, err = s.Request(ctx, transport.Message{Data: []byte("again")})
	other := 3 - first.ID
	if err != nil || string(m.Data) != fmt.Sprintf("%d:again", other) {
		t.Fatalf("Request after the crash: %q, %v", m.Data, err)
	}
	dmu.Lock()
	got := slices.Clone(dialled)
	dmu.Unlock()
	if !slices.Equal(got, []uint32{first.ID, other}) {
		t.Fatalf("dialled %v", got)
	}
	if st := s.Stats(); st.Failovers != 1 || st.CookieEchoesSent != 0 || st.Unreachable != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The report went to the pool user's loop before the selection that
	// followed it: after one more call there it is counted.
	if err := pu.ep.call(ctx, func(time.Time) {}); err != nil {
		t.Fatal(err)
	}
	if st := pu.Stats(); st.Unreachable != 1 {
		t.Fatalf("pool user stats %+v, want the crashed PE reported", st)
	}
}

// NetConn keeps message boundaries over a stream, refuses what it cannot
// carry, and reports the peer's clean close and a bad frame.
func TestNetConnFraming(t *testing.T) {
	a, b := net.Pipe()
	ca, cb := NetConn(a), NetConn(b)
	defer ca.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		ca.Send(ctx, transport.Message{PPID: 7, Data: []byte("one")})
		ca.Send(ctx, transport.Message{Data: []byte("two two")})
		a.Write([]byte{0, 0, 0, 0}) // a frame of length 0
	}()
	for _, want := range []string{"one", "two two"} {
		m, err := cb.Recv(ctx)
		if err != nil || string(m.Data) != want || m.PPID != 0 {
			t.Fatalf("Recv %+v, %v; want %q on PPID 0", m, err, want)
		}
	}
	if _, err := cb.Recv(ctx); !errors.Is(err, transport.ErrAssociationLost) {
		t.Fatalf("bad frame: %v", err)
	}
	for _, m := range []transport.Message{{}, {PPID: transport.PPIDASAP, Data: []byte{1}}, {Data: make([]byte, transport.MaxMessageSize+1)}} {
		if err := ca.Send(ctx, m); err == nil || (m.PPID == transport.PPIDASAP && !errors.Is(err, ErrControlPPID)) {
			t.Fatalf("Send of %d bytes on PPID %d: %v", len(m.Data), m.PPID, err)
		}
	}
	c, d := net.Pipe()
	cc, cd := NetConn(c), NetConn(d)
	cc.Close()
	if _, err := cd.Recv(ctx); !errors.Is(err, transport.ErrPeerClosed) {
		t.Fatalf("Recv after the peer closed: %v", err)
	}
	if _, err := cc.Recv(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Recv after Close: %v", err)
	}
	short, cancel2 := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel2()
	e, f := net.Pipe()
	defer f.Close()
	if _, err := NetConn(e).Recv(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv past ctx's deadline: %v", err)
	}
}
