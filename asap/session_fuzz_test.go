package asap

import (
	"bytes"
	"testing"

	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// FuzzSessionCore feeds random bytes on PPID 11 (as from a PE) and random
// application data into an established session (RFC 5352 §3.9-3.11):
// nothing panics, the session stays up, the cookie changes only with a
// valid ASAP_COOKIE (and is then its cookie), the business card only with
// a valid ASAP_BUSINESS_CARD of the session's pool, data is delivered
// untouched, and the next failover sends the latest cookie first.
func FuzzSessionCore(f *testing.F) {
	for _, m := range []tlv.ASAPMessage{
		&tlv.CookieMessage{Cookie: []byte("state")},
		&tlv.CookieMessage{},
		&tlv.CookieEcho{Cookie: []byte("echo")},
		&tlv.BusinessCard{PoolHandle: []byte("echo"), PEs: []tlv.PoolElement{sessPE(2), sessPE(3)}},
		&tlv.BusinessCard{PoolHandle: []byte("other"), PEs: []tlv.PoolElement{sessPE(2)}},
		&tlv.ASAPError{Error: tlv.OperationError{Causes: []tlv.Cause{{Code: tlv.CauseUnrecognizedMessage}}}},
	} {
		b, err := tlv.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte("data"))
	}
	f.Add([]byte{0x0b, 0, 0, 8, 0, 0x1a, 0, 4}, []byte{})
	f.Fuzz(func(t *testing.T, b, data []byte) {
		c, err := NewSessionCore([]byte("echo"), SessionCoreConfig{Cookie: []byte("c0")})
		if err != nil {
			t.Fatal(err)
		}
		c.Start(t0)
		c.Outbox()
		c.HandleSelected(t0, sessPE(1))
		d := only[SessionDial](c.Outbox())
		c.HandleConnected(t0, d[0].Assoc)
		c.Outbox()
		cardBefore := c.Card()

		c.HandleMessage(t0, d[0].Assoc, transport.Message{PPID: transport.PPIDASAP, Data: b})
		outs := c.Outbox()
		if c.State() != SessionEstablished {
			t.Fatalf("control message broke the session: %v", c.State())
		}
		msg, perr := tlv.ParseASAP(b)
		wantCookie := "c0"
		if cm, ok := msg.(*tlv.CookieMessage); perr == nil && ok {
			wantCookie = string(cm.Cookie)
		}
		if got := string(c.Cookie()); got != wantCookie {
			t.Fatalf("cookie %q, want %q", got, wantCookie)
		}
		bc, isCard := msg.(*tlv.BusinessCard)
		isCard = perr == nil && isCard && string(bc.PoolHandle) == "echo"
		if !isCard && len(c.Card()) != len(cardBefore) {
			t.Fatalf("card changed by %T", msg)
		}
		if len(only[SessionDeliver](outs))+len(only[SessionSend](outs)) != 0 {
			t.Fatalf("control gave %#v", outs)
		}

		if len(data) > 0 {
			c.HandleMessage(t0, d[0].Assoc, transport.Message{PPID: 5, Data: data})
			dl := only[SessionDeliver](c.Outbox())
			if len(dl) != 1 || !bytes.Equal(dl[0].Msg.Data, data) || dl[0].Msg.PPID != 5 {
				t.Fatalf("data delivered as %+v", dl)
			}
		}

		c.HandleLost(t0, d[0].Assoc, transport.ErrAssociationLost)
		var next AssocID
		var pe tlv.PoolElement
		seen := map[uint32]bool{1: true}
		for range DefaultMaxFailover + 1 {
			outs := c.Outbox()
			if ds := only[SessionDial](outs); len(ds) == 1 {
				if seen[ds[0].PE.ID] {
					t.Fatalf("PE %d dialled twice in one failover", ds[0].PE.ID)
				}
				seen[ds[0].PE.ID] = true
				next, pe = ds[0].Assoc, ds[0].PE
				break
			}
			if len(only[SessionSelect](outs)) == 1 {
				pe = sessPE(99)
				c.HandleSelected(t0, pe)
				continue
			}
			t.Fatalf("failover stalled: %#v", outs)
		}
		c.HandleConnected(t0, next)
		ms := sends(c.Outbox())
		if wantCookie == "" || pe.UserTransport.Use != tlv.TransportUseDataPlusControl {
			if len(ms) != 0 {
				t.Fatalf("sent %v without a cookie to echo", ms)
			}
			return
		}
		if len(ms) != 1 || string(echoOf(t, ms[0])) != wantCookie {
			t.Fatalf("after failover sent %v, want COOKIE_ECHO %q first", ms, wantCookie)
		}
	})
}
