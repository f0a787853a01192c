// Package countersvc is the stateful service the session demo and the
// session tests run on their pool elements (RFC 5352 §3.9-3.11): a
// counter per session that lives only in the session's cookie.
//
// A request "inc <seq>" adds one to the counter unless seq is the request
// the cookie says was done last (a request the session sent again after a
// failover, or the caller after an error). Then the PE seals
// "counter=<n> seq=<seq>" with the pool's shared key (asap/cookie), sends
// it (ASAP_COOKIE) and only then the answer "counter=<n> pe=<PE ID>":
// whoever holds the answer holds the cookie that includes it. A session
// that starts with an ASAP_COOKIE_ECHO starts from the counter in it once
// the cookie opened; a cookie that does not open gets the session
// aborted, with nothing restored.
package countersvc

import (
	"context"
	"fmt"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/asap/cookie"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// Request is the request for increment seq.
func Request(seq int) []byte { return fmt.Appendf(nil, "inc %d", seq) }

// ParseAnswer reads an answer: the counter and the PE that counted.
func ParseAnswer(b []byte) (n int, pe uint32, err error) {
	if _, err := fmt.Sscanf(string(b), "counter=%d pe=%d", &n, &pe); err != nil {
		return 0, 0, fmt.Errorf("countersvc: bad answer %q: %w", b, err)
	}
	return n, pe, nil
}

// ParseState reads the state an opened cookie holds: the counter and the
// request it counted last.
func ParseState(b []byte) (n, seq int, err error) {
	if _, err := fmt.Sscanf(string(b), "counter=%d seq=%d", &n, &seq); err != nil {
		return 0, 0, fmt.Errorf("countersvc: bad state %q: %w", b, err)
	}
	return n, seq, nil
}

// state is the cookie's state for counter n after request seq.
func state(n, seq int) []byte { return fmt.Appendf(nil, "counter=%d seq=%d", n, seq) }

// Verdict is what Server.Check decides about a request.
type Verdict int

const (
	// Answer counts the request and answers it.
	Answer Verdict = iota
	// Ignore reads the request and never answers it (a hung PE).
	Ignore
	// Abandon stops serving the session at once, leaving its association
	// as it is and the request unanswered (a host about to crash).
	Abandon
)

// Server serves the counter on a PE's sessions. Sealer is required; the
// other fields may be left zero.
type Server struct {
	// Sealer seals and opens the cookies, with the pool's shared keys.
	Sealer *cookie.Sealer
	// PE is the PE identifier the answers name.
	PE uint32
	// Card, when set, gives the business card (ASAP_BUSINESS_CARD, RFC
	// 5352 §3.11) sent at the start of each session; nil or an empty one:
	// none is sent.
	Card func() []tlv.PoolElement
	// Check, when set, is asked about each well-formed request (its seq)
	// before it is counted. Nil: every request is answered.
	Check func(seq int) Verdict
	// Restored, when set, is told of a session that starts from the
	// counter n of a cookie it echoed, sealed as meta says.
	Restored func(s *asap.PESession, n int, meta cookie.Meta)
	// Refused, when set, is told of a session whose echoed cookie did not
	// open (err: cookie's error, or a state that does not parse); the
	// session is aborted.
	Refused func(s *asap.PESession, err error)
}

// Serve serves the session until it ends, then closes it (except after
// Abandon: the session is left as it is). A request that does not parse
// is answered "error: ..." and counts nothing.
func (v *Server) Serve(ctx context.Context, s *asap.PESession) {
	n, seq := 0, 0
	if echo := s.CookieEcho(); echo != nil {
		st, meta, err := v.Sealer.OpenMeta(echo)
		if err == nil {
			n, seq, err = ParseState(st)
		}
		if err != nil {
			if v.Refused != nil {
				v.Refused(s, err)
			}
			s.Abort()
			return
		}
		if v.Restored != nil {
			v.Restored(s, n, meta)
		}
	}
	if v.Card != nil {
		if card := v.Card(); len(card) > 0 {
			if err := s.SendBusinessCard(ctx, tlv.BusinessCard{PEs: card}); err != nil {
				s.Close()
				return
			}
		}
	}
	for {
		m, err := s.Recv(ctx)
		if err != nil {
			s.Close()
			return
		}
		var k int
		if _, err := fmt.Sscanf(string(m.Data), "inc %d", &k); err != nil {
			err = s.Send(ctx, transport.Message{PPID: m.PPID, Stream: m.Stream, Data: []byte("error: " + err.Error())})
			if err != nil {
				s.Close()
				return
			}
			continue
		}
		verdict := Answer
		if v.Check != nil {
			verdict = v.Check(k)
		}
		switch verdict {
		case Ignore:
			continue
		case Abandon:
			return
		}
		if k != seq { // a request sent again is not counted twice
			n, seq = n+1, k
		}
		// The cookie first: when the answer arrives, the session holds
		// the state that includes it.
		sealed, err := v.Sealer.Seal(state(n, seq))
		if err == nil {
			err = s.SendCookie(ctx, sealed)
		}
		if err == nil {
			err = s.Send(ctx, transport.Message{PPID: m.PPID, Stream: m.Stream, Data: fmt.Appendf(nil, "counter=%d pe=%d", n, v.PE)})
		}
		if err != nil {
			s.Close()
			return
		}
	}
}
