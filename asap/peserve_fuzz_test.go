package asap

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// testOwner stands in for the SessionServer.
type testOwner struct {
	readyCh chan *PESession
	endedCh chan bool
}

func (o *testOwner) ready(ps *PESession)                { o.readyCh <- ps }
func (o *testOwner) ended(ps *PESession, vanished bool) { o.endedCh <- vanished }
func (o *testOwner) emit(PESessionEvent)                {}

// splitFuzz cuts b into messages: a length byte, a kind byte (even: PPID
// 11; odd: data on PPID kind/2 and stream kind%4), then the bytes.
func splitFuzz(b []byte) []transport.Message {
	var ms []transport.Message
	for len(b) >= 2 {
		n, kind := int(b[0]), b[1]
		b = b[2:]
		n = min(n, len(b))
		data := b[:n]
		b = b[n:]
		if len(data) == 0 {
			continue // SCTP carries no empty message
		}
		m := transport.Message{PPID: transport.PPIDASAP, Data: data}
		if kind%2 == 1 {
			m = transport.Message{PPID: uint32(kind / 2), Stream: uint16(kind % 4), Data: data}
			if m.PPID == transport.PPIDASAP {
				m.PPID = 0
			}
		}
		ms = append(ms, m)
	}
	return ms
}

func fuzzMsg(kind byte, data []byte) []byte { return append([]byte{byte(len(data)), kind}, data...) }

// A pool user sends random messages on a session, ASAP on PPID 11 among
// data: nothing panics, every data message reaches Recv in order, the
// cookie echo is the first valid one if it came before data, and every
// PPID 11 message is either taken or counted as ignored.
func FuzzPESession(f *testing.F) {
	echo, _ := tlv.Marshal(&tlv.CookieEcho{Cookie: []byte("state")})
	card, _ := tlv.Marshal(&tlv.BusinessCard{PoolHandle: []byte("p"), PEs: []tlv.PoolElement{{ID: 1,
		UserTransport: tlv.NewSCTPTransport(1, 0, netip.MustParseAddr("10.0.0.1")), Policy: tlv.Policy{Type: 1}}}})
	f.Add(append(fuzzMsg(0, echo), fuzzMsg(1, []byte("data"))...))
	f.Add(append(fuzzMsg(1, []byte("data")), fuzzMsg(0, echo)...))
	f.Add(append(fuzzMsg(0, card), fuzzMsg(0, echo)...))
	f.Add(fuzzMsg(0, []byte{0x0c, 0, 0, 5, 0}))
	f.Add([]byte{})
	f.Fuzz(fuzzPESession)
}

func fuzzPESession(t *testing.T, b []byte) {
	msgs := splitFuzz(b)
	if len(msgs) > 64 {
		msgs = msgs[:64]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	net := memnet.New(1)
	defer net.Close()
	a, c := net.NewNode(), net.NewNode()
	ln, err := a.Listen(a.Addr(1))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pu, err := c.Dial(ctx, ln.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer pu.Abort()
	conn, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	o := &testOwner{readyCh: make(chan *PESession, 1), endedCh: make(chan bool, 1)}
	cfg := SessionServerConfig{FirstMessageWait: -1, RecvQueue: 4, MaxCookieEcho: 16}
	var ctr serverCounters
	ps := newPESession(context.Background(), conn, cfg.sessionConfig(), o, &ctr)
	go ps.run()
	defer ps.Close()
	if got := <-o.readyCh; got != ps {
		t.Fatal("another session handed over")
	}

	var wantData []transport.Message
	var wantEcho []byte
	control, cards := 0, 0
	for _, m := range msgs {
		if m.PPID != transport.PPIDASAP {
			wantData = append(wantData, m)
			continue
		}
		control++
		switch x := parsed(m.Data).(type) {
		case *tlv.CookieEcho:
			if len(wantData) == 0 && wantEcho == nil && len(x.Cookie) > 0 && len(x.Cookie) <= 16 {
				wantEcho = x.Cookie
			}
		case *tlv.BusinessCard:
			cards++
		}
	}
	// The pool user sends while the host reads: the session's queue
	// is short and stops reading when full.
	sent := make(chan error, 1)
	go func() {
		defer pu.Close()
		for _, m := range msgs {
			if err := pu.Send(ctx, m); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	defer func() {
		if err := <-sent; err != nil {
			t.Errorf("pool user Send: %v", err)
		}
	}()
	for i, want := range wantData {
		m, err := ps.Recv(ctx)
		if err != nil {
			t.Fatalf("data message %d: %v", i, err)
		}
		if m.PPID != want.PPID || m.Stream != want.Stream || !bytes.Equal(m.Data, want.Data) {
			t.Fatalf("data message %d = %+v, want %+v", i, m, want)
		}
	}
	if _, err := ps.Recv(ctx); !errors.Is(err, transport.ErrPeerClosed) {
		t.Fatalf("Recv after the data: %v, want ErrPeerClosed", err)
	}
	if got := ps.CookieEcho(); !bytes.Equal(got, wantEcho) {
		t.Fatalf("CookieEcho = %x, want %x", got, wantEcho)
	}
	st := ps.Stats()
	echoes := 0
	if wantEcho != nil {
		echoes = 1
	}
	if int(st.ControlIgnored)+int(st.BusinessCardsReceived)+echoes != control || int(st.BusinessCardsReceived) != cards {
		t.Fatalf("Stats %+v: %d ignored + %d cards + %d echo != %d control messages", st, st.ControlIgnored, st.BusinessCardsReceived, echoes, control)
	}
	if (ps.BusinessCard() != nil) != (cards > 0) {
		t.Fatalf("BusinessCard = %v after %d cards", ps.BusinessCard(), cards)
	}
	if vanished := <-o.endedCh; vanished {
		t.Fatal("a handed-over session counted as vanished")
	}
}

func parsed(b []byte) tlv.ASAPMessage {
	m, err := tlv.ParseASAP(b)
	if err != nil {
		return nil
	}
	return m
}
