package asap

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/sctp"
)

// sessEnv is where a session benchmark or test runs: a registrar listener,
// PEs, and the pool user's transport.
type sessEnv struct {
	*sessRig
	puTr    transport.Transport
	kind    transport.Kind
	cleanup func()
}

func (e *sessEnv) close() {
	e.sessRig.close()
	if e.cleanup != nil {
		e.cleanup()
	}
}

func (e *sessEnv) newPU(t testing.TB) *PoolUser {
	t.Helper()
	var lg *slog.Logger // benchmarks log nothing
	if _, ok := t.(*testing.B); !ok {
		lg = testLogger(t)
	}
	pu, err := NewPoolUser(PUConfig{Registrars: []transport.Addr{e.reg.l.Addr()}, Kind: e.kind, Logger: lg}, e.puTr)
	if err != nil {
		t.Fatal(err)
	}
	return pu
}

func memSessEnv(t testing.TB, pes int) *sessEnv {
	m := newMemSess(t, pes)
	return &sessEnv{sessRig: m.sessRig, puTr: m.n.NewNode(), kind: transport.KindMem, cleanup: func() { m.n.Close() }}
}

var loopback = transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("127.0.0.1:0")}

// sctpSessEnv runs the registrar, each PE and the pool user on their own
// SCTP-over-UDP transport on 127.0.0.1, with the path supervision given.
func sctpSessEnv(t testing.TB, pes int, sup sctp.Supervision) *sessEnv {
	t.Helper()
	cfg := sctp.Config{ShutdownTimeout: time.Second, Supervision: sup}
	regL, err := sctp.New(cfg).Listen(loopback)
	if err != nil {
		t.Fatal(err)
	}
	var ps []*sessTestPE
	for i := range pes {
		ps = append(ps, startSessPE(t, uint32(i+1), sctp.New(cfg), loopback))
	}
	return &sessEnv{sessRig: newSessRig(t, regL, ps), puTr: sctp.New(cfg), kind: transport.KindSCTPUDP}
}

// BenchmarkSessionRoundTrip measures one request/response of 100 bytes
// through a Session (layer=session: Session.Request to an echoing PE, the
// session's loop, reader and writer on the way) beside the same round trip
// on a bare association to the same PE (layer=bare: Conn.Send then
// Conn.Recv), over memnet and over SCTP on loopback, so that the session's
// overhead reads as the ratio of the two.
func BenchmarkSessionRoundTrip(b *testing.B) {
	for _, tr := range []struct {
		name string
		env  func(testing.TB) *sessEnv
	}{
		{"memnet", func(t testing.TB) *sessEnv { return memSessEnv(t, 1) }},
		{"sctp", func(t testing.TB) *sessEnv { return sctpSessEnv(t, 1, sctp.Supervision{}) }},
	} {
		b.Run("transport="+tr.name, func(b *testing.B) {
			env := tr.env(b)
			defer env.close()
			ctx := context.Background()
			req := transport.Message{Data: bytes.Repeat([]byte{'x'}, 100)}
			b.Run("layer=bare", func(b *testing.B) {
				c, err := env.puTr.Dial(ctx, env.pes[0].at)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				b.ReportAllocs()
				for b.Loop() {
					if err := c.Send(ctx, req); err != nil {
						b.Fatal(err)
					}
					m, err := c.Recv(ctx)
					if err != nil || len(m.Data) != 100 {
						b.Fatal(len(m.Data), err)
					}
				}
			})
			b.Run("layer=session", func(b *testing.B) {
				pu := env.newPU(b)
				defer pu.Close()
				s, err := pu.Connect(ctx, []byte("echo"), SessionConfig{})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				b.ReportAllocs()
				for b.Loop() {
					m, err := s.Request(ctx, req)
					if err != nil || len(m.Data) != 100 {
						b.Fatal(len(m.Data), err)
					}
				}
			})
		})
	}
}
