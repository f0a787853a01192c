package asap

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// sessTestPE is a pool element written with the raw transport and tlv
// only (not the package's PE side): it accepts PU associations, sends a
// business card when told to, and serves a counter whose state travels in
// the cookie. A request "inc <seq>" adds one to the counter unless seq is
// the one the cookie says was done already (a retried request), then the
// PE sends ASAP_COOKIE "<seq> <n>" on PPID 11 and answers "<n> <PE ID>".
// ASAP_COOKIE_ECHO "<seq> <n>" restores the counter (RFC 5352 §3.10).
// Other data is echoed back.
type sessTestPE struct {
	id   uint32
	tr   transport.Transport
	at   transport.Addr // where it listens (port filled in)
	pe   tlv.PoolElement
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu       sync.Mutex
	l        transport.Listener
	conns    []transport.Conn
	hung     bool
	noCookie bool
	card     []tlv.PoolElement // sent on each new association when set
	firsts   []string          // first message of each association: "echo:<cookie>" or "data:<bytes>"
	served   int               // requests answered
}

func startSessPE(t testing.TB, id uint32, tr transport.Transport, at transport.Addr) *sessTestPE {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	p := &sessTestPE{id: id, tr: tr, at: at, ctx: ctx, stop: stop}
	if err := p.listen(); err != nil {
		t.Fatal(err)
	}
	ut, err := TransportParam(p.at, tlv.TransportUseDataPlusControl)
	if err != nil {
		t.Fatal(err)
	}
	p.pe = testPE(id, policy.RoundRobin, policy.Values{})
	p.pe.UserTransport = ut
	return p
}

func (p *sessTestPE) listen() error {
	l, err := p.tr.Listen(p.at)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.l, p.at, p.hung = l, l.Addr(), false
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept(p.ctx)
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			card := p.card
			p.mu.Unlock()
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.serve(c, card) }()
		}
	}()
	return nil
}

func (p *sessTestPE) send(c transport.Conn, m tlv.ASAPMessage) {
	b, _ := tlv.Marshal(m)
	c.Send(p.ctx, transport.Message{PPID: transport.PPIDASAP, Data: b})
}

func (p *sessTestPE) serve(c transport.Conn, card []tlv.PoolElement) {
	if card != nil {
		p.send(c, &tlv.BusinessCard{PoolHandle: []byte("echo"), PEs: card})
	}
	seq, n := -1, 0
	first := true
	for {
		m, err := c.Recv(p.ctx)
		if err != nil {
			return
		}
		p.mu.Lock()
		if first {
			f := "data:" + string(m.Data)
			if m.PPID == transport.PPIDASAP {
				f = "asap:?"
				if msg, err := tlv.ParseASAP(m.Data); err == nil {
					if e, ok := msg.(*tlv.CookieEcho); ok {
						f = "echo:" + string(e.Cookie)
					}
				}
			}
			p.firsts = append(p.firsts, f)
			first = false
		}
		hung, noCookie := p.hung, p.noCookie
		p.mu.Unlock()
		if hung {
			continue
		}
		if m.PPID == transport.PPIDASAP {
			msg, err := tlv.ParseASAP(m.Data)
			if e, ok := msg.(*tlv.CookieEcho); err == nil && ok {
				fmt.Sscanf(string(e.Cookie), "%d %d", &seq, &n)
			}
			continue
		}
		rest, ok := strings.CutPrefix(string(m.Data), "inc ")
		if !ok {
			c.Send(p.ctx, m)
			continue
		}
		s, _ := strconv.Atoi(rest)
		if s != seq {
			seq, n = s, n+1
		}
		if !noCookie {
			p.send(c, &tlv.CookieMessage{Cookie: fmt.Appendf(nil, "%d %d", seq, n)})
		}
		p.mu.Lock()
		p.served++
		p.mu.Unlock()
		c.Send(p.ctx, transport.Message{Data: fmt.Appendf(nil, "%d %d", n, p.id)})
	}
}

// crash kills the PE: its associations are aborted and its port refuses
// new ones.
func (p *sessTestPE) crash() {
	p.mu.Lock()
	l, cs := p.l, p.conns
	p.l, p.conns = nil, nil
	p.mu.Unlock()
	if l != nil {
		l.Close()
	}
	for _, c := range cs {
		c.Abort()
	}
}

// hang makes the PE read and never answer, on every association.
func (p *sessTestPE) hang() {
	p.mu.Lock()
	p.hung = true
	p.mu.Unlock()
}

func (p *sessTestPE) firstMessages() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.firsts...)
}

func (p *sessTestPE) close() {
	p.crash()
	p.stop()
	p.wg.Wait()
}

// sessRig is a fake registrar and PEs of pool "echo", registered straight
// into it (PE IDs 1..n).
type sessRig struct {
	reg *fakeRegistrar
	pes []*sessTestPE
}

func newSessRig(t testing.TB, regL transport.Listener, pes []*sessTestPE) *sessRig {
	r := &sessRig{reg: startFakeRegistrar(t, regL, 0xabc), pes: pes}
	r.reg.mu.Lock()
	for _, p := range pes {
		r.reg.pes[p.id] = p.pe
	}
	r.reg.mu.Unlock()
	return r
}

func (r *sessRig) close() {
	for _, p := range r.pes {
		p.close()
	}
	r.reg.close()
}

// byID returns the PE with the ID.
func (r *sessRig) byID(id uint32) *sessTestPE {
	for _, p := range r.pes {
		if p.id == id {
			return p
		}
	}
	return nil
}

// inc sends request seq on s and parses the answer "<n> <PE ID>".
func inc(ctx context.Context, s *Session, seq int) (n int, pe uint32, err error) {
	m, err := s.Request(ctx, transport.Message{Data: fmt.Appendf(nil, "inc %d", seq)})
	if err != nil {
		return 0, 0, err
	}
	if _, err := fmt.Sscanf(string(m.Data), "%d %d", &n, &pe); err != nil {
		return 0, 0, fmt.Errorf("bad answer %q: %w", m.Data, err)
	}
	return n, pe, nil
}
