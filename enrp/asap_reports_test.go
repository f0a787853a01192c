package enrp

import (
	"errors"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/handlespace"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
)

// Tests of the registrar's defences against false Endpoint Unreachable
// reports, identifier takeover, floods and idle associations (RFC 5352
// §3.5 and §3.7, RFC 5355 §3).

func eu(h string, id uint32) *tlv.EndpointUnreachable {
	return &tlv.EndpointUnreachable{PoolHandle: tlv.PoolHandle(h), PEID: id}
}

func kaAck(h string, id uint32) *tlv.EndpointKeepAliveAck {
	return &tlv.EndpointKeepAliveAck{PoolHandle: tlv.PoolHandle(h), PEID: id}
}

func (f *srvFixture) stored(h string, id uint32) bool {
	_, _, ok := f.st.Lookup(tlv.PoolHandle(h), id)
	return ok
}

// reporters opens n reporting associations 101... from ip.
func (f *srvFixture) reporters(n int, ip string) []AssocID {
	ids := make([]AssocID, n)
	for i := range ids {
		ids[i] = AssocID(101 + i)
		f.accept(ids[i], ip)
	}
	return ids
}

// reportAll sends a report about h/id from each association and returns
// the outputs.
func (f *srvFixture) reportAll(from []AssocID, h string, id uint32) []Output {
	var outs []Output
	for _, a := range from {
		outs = append(outs, f.feed(a, eu(h, id))...)
	}
	return outs
}

// RFC 5355 §3 false failure reports (issue finding 4): three reports from
// one association, or from three, do not remove a PE that answers its
// home's keep-alive. On the old code the PE was removed by the third
// report of one association, 2 ms after the first.
func TestServerFalseReportsKeepAnsweringPE(t *testing.T) {
	f := newSrv(t, nil, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	f.register(1, "p", rrPE(1, "10.0.0.2"))
	f.accept(9, "10.0.0.9")
	for range 3 {
		f.now = f.now.Add(time.Millisecond)
		if outs := f.feed(9, eu("p", 1)); len(outs) != 0 {
			t.Fatalf("report from one association: %v", outs)
		}
	}
	if !f.stored("p", 1) {
		t.Fatal("three reports from one association removed the PE")
	}
	if s := f.c.Stats(); s.UnreachableReports != 1 || s.UnreachableRepeated != 2 || s.UnreachableChecks != 0 {
		t.Fatalf("one reporter: %+v", s)
	}

	// Two more reporters make three: the home checks the PE at once.
	att := f.reporters(2, "10.0.0.9")
	outs := f.reportAll(att, "p", 1)
	ka := srvOne[*tlv.EndpointKeepAlive](t, outs)
	if snd := srvOnly[SendASAP](outs)[0]; snd.Assoc != 1 || ka.PEID != 1 || !ka.HasPEID || ka.ServerID != srvID {
		t.Fatalf("check %+v on association %d", ka, snd.Assoc)
	}
	if d := f.c.NextDeadline(); !d.Equal(f.now.Add(DefaultKeepAliveTimeout)) {
		t.Errorf("ack deadline %v after the check", d.Sub(f.now))
	}
	// The PE answers within KeepAliveTimeout: kept, reports reset.
	f.now = f.now.Add(DefaultKeepAliveTimeout - time.Millisecond)
	if outs := f.feed(1, kaAck("p", 1)); len(outs) != 0 {
		t.Fatalf("ack answered: %v", outs)
	}
	if ev := removedEvs(f.tick(time.Second)); len(ev) != 0 || !f.stored("p", 1) {
		t.Fatalf("answering PE removed: %v", ev)
	}
	s := f.c.Stats()
	if s.UnreachableChecks != 1 || s.UnreachableCleared != 1 || s.UnreachableRemoved != 0 {
		t.Errorf("stats %+v", s)
	}
	// A new round needs three new reports.
	f.accept(120, "10.0.0.9")
	if outs := f.feed(120, eu("p", 1)); len(outs) != 0 {
		t.Errorf("one report after the reset: %v", outs)
	}
}

// A PE that does not answer the check is removed (RemovedUnreachable) and
// its association, carrying no other PE, is aborted (as RSPLIB does on a
// keep-alive timeout).
func TestServerReportedDeadPERemoved(t *testing.T) {
	f := newSrv(t, nil, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	f.register(1, "p", rrPE(1, "10.0.0.2"))
	f.reportAll(f.reporters(3, "10.0.0.9"), "p", 1)
	if outs := f.tick(DefaultKeepAliveTimeout - time.Millisecond); len(outs) != 0 || !f.stored("p", 1) {
		t.Fatalf("removed before KeepAliveTimeout: %v", outs)
	}
	outs := f.tick(time.Millisecond)
	ev := removedEvs(outs)
	if len(ev) != 1 || ev[0].PEID != 1 || ev[0].Reason != RemovedUnreachable || f.stored("p", 1) {
		t.Fatalf("dead PE: %v", outs)
	}
	ab := srvOnly[CloseAssoc](outs)
	if len(ab) != 1 || ab[0].Assoc != 1 || ab[0].Reason != CloseKeepAlive {
		t.Fatalf("aborts %v, want association 1 (keep-alive)", ab)
	}
	if f.c.Associations() != 3 {
		t.Errorf("%d associations left, want the 3 reporters", f.c.Associations())
	}
	// The driver's HandleLost for it changes nothing.
	f.c.HandleLost(f.now, 1)
	if outs := f.c.Outbox(); len(outs) != 0 {
		t.Errorf("HandleLost after the abort: %v", outs)
	}
	s := f.c.Stats()
	if s.UnreachableRemoved != 1 || s.KeepAliveTimeouts != 0 || s.KeepAliveAborted != 1 || s.AssocLostRemoved != 0 {
		t.Errorf("stats %+v", s)
	}
}

// RFC 5352 §3.7: a PE removed for a missing keep-alive ack takes its
// association down only when it was the association's last PE.
func TestServerKeepAliveTimeoutAborts(t *testing.T) {
	f := newSrv(t, func(c *ASAPConfig) {
		c.KeepAliveInterval = time.Second
		c.KeepAliveTimeout = time.Second
	}, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	f.register(1, "p", rrPE(1, "10.0.0.2"))
	f.register(1, "p", rrPE(2, "10.0.0.2"))
	f.tick(time.Second) // keep-alives to both
	f.feed(1, kaAck("p", 2))
	outs := f.tick(time.Second)
	if ev := removedEvs(outs); len(ev) != 1 || ev[0].PEID != 1 || ev[0].Reason != RemovedKeepAliveTimeout {
		t.Fatalf("first timeout: %v", outs)
	}
	if ab := srvOnly[CloseAssoc](outs); len(ab) != 0 {
		t.Fatalf("association carrying PE 2 aborted: %v", ab)
	}
	outs = f.tick(3 * time.Second) // PE 2 stops answering
	if ev := removedEvs(outs); len(ev) != 1 || ev[0].PEID != 2 {
		t.Fatalf("second timeout: %v", outs)
	}
	if ab := srvOnly[CloseAssoc](outs); len(ab) != 1 || ab[0].Assoc != 1 || f.c.Associations() != 0 {
		t.Fatalf("aborts %v, %d associations", ab, f.c.Associations())
	}
}

// failCheck makes PE h/id fail a report check: reports from the
// reporters, no ack, KeepAliveTimeout.
func (f *srvFixture) failCheck(from []AssocID, h string, id uint32) []Output {
	f.t.Helper()
	f.reportAll(from, h, id)
	outs := f.tick(DefaultKeepAliveTimeout)
	if f.stored(h, id) {
		f.t.Fatalf("%s/%d survived an unanswered check", h, id)
	}
	return outs
}

// Issue finding 4, identifier takeover: after a PE was removed on reports,
// another association cannot register its identifier during IDGrace; the
// PE's own association can. On the old code the attacker's registration
// was accepted and the honest PE's refused with Non-unique PE Identifier.
func TestServerGraceIDTakeover(t *testing.T) {
	f := newSrv(t, nil, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	f.register(1, "p", rrPE(1, "10.0.0.2"))
	f.register(1, "q", rrPE(1, "10.0.0.2")) // keeps association 1 up
	att := f.reporters(3, "10.0.0.9")
	f.failCheck(att, "p", 1)
	if f.c.Associations() != 4 {
		t.Fatalf("PE association aborted although it carries q/1")
	}
	r := srvOne[*tlv.RegistrationResponse](t, f.feed(att[0], reg("p", rrPE(1, "10.0.0.9"))))
	if !r.Reject || r.Error.First() != tlv.CauseNonUniquePEIdentifier {
		t.Fatalf("takeover during grace: %+v", r)
	}
	if f.stored("p", 1) || f.c.Stats().GraceRefused != 1 {
		t.Fatalf("takeover stored the PE, or not counted: %+v", f.c.Stats())
	}
	// The honest PE comes back over its association.
	f.now = f.now.Add(DefaultIDGrace - 6*time.Second)
	f.register(1, "p", rrPE(1, "10.0.0.2"))
	if f.c.GraceEntries() != 0 {
		t.Errorf("%d grace entries after the PE came back", f.c.GraceEntries())
	}

	// After IDGrace the identifier is free again.
	f.failCheck(att, "p", 1)
	f.tick(DefaultIDGrace)
	if f.c.GraceEntries() != 0 {
		t.Fatalf("%d grace entries after IDGrace", f.c.GraceEntries())
	}
	r = srvOne[*tlv.RegistrationResponse](t, f.feed(att[0], reg("p", rrPE(1, "10.0.0.9"))))
	if r.Reject {
		t.Fatalf("registration after IDGrace refused: %v", r.Error)
	}
}

// When the removed PE's association went down with it (it carried no
// other PE), its identifier is held for the association's peer address:
// the PE registers again on a new association from there, an attacker on
// another address is refused.
func TestServerGraceAfterAbort(t *testing.T) {
	f := newSrv(t, nil, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	f.register(1, "p", rrPE(1, "10.0.0.2"))
	att := f.reporters(3, "10.0.0.9")
	if ab := srvOnly[CloseAssoc](f.failCheck(att, "p", 1)); len(ab) != 1 {
		t.Fatalf("aborts %v", ab)
	}
	r := srvOne[*tlv.RegistrationResponse](t, f.feed(att[1], reg("p", rrPE(1, "10.0.0.9"))))
	if !r.Reject || r.Error.First() != tlv.CauseNonUniquePEIdentifier {
		t.Fatalf("takeover after the abort: %+v", r)
	}
	f.accept(2, "10.0.0.2")
	f.register(2, "p", rrPE(1, "10.0.0.2"))
}

// Issue finding 4, pool re-creation: the pool emptied by the removal
// keeps its policy and transport for IDGrace against other associations;
// the honest PE re-creates it. On the old code the attacker's Least Used
// pool was accepted and the honest PE refused with Inconsistent Pooling
// Policy.
func TestServerGracePoolRecreation(t *testing.T) {
	f := newSrv(t, nil, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	f.register(1, "p", rrPE(1, "10.0.0.2"))
	f.register(1, "q", rrPE(1, "10.0.0.2"))
	att := f.reporters(3, "10.0.0.9")
	f.failCheck(att, "p", 1)
	if f.st.Pools() != 1 {
		t.Fatalf("%d pools, want q only", f.st.Pools())
	}
	lu := rrPE(2, "10.0.0.9")
	lu.Policy = policy.Encode(policy.LeastUsed, policy.Values{})
	tcp := rrPE(2, "10.0.0.9")
	tcp.UserTransport = tlv.NewTCPTransport(7000, tlv.TransportUseDataOnly, netip.MustParseAddr("10.0.0.9"))
	ctl := rrPE(2, "10.0.0.9")
	ctl.UserTransport.Use = tlv.TransportUseDataPlusControl
	for _, c := range []struct {
		pe   tlv.PoolElement
		want tlv.CauseCode
	}{
		{lu, tlv.CauseInconsistentPoolingPolicy},
		{tcp, tlv.CauseInconsistentTransportType},
		{ctl, tlv.CauseInconsistentDataControlConfig},
	} {
		r := srvOne[*tlv.RegistrationResponse](t, f.feed(att[0], reg("p", c.pe)))
		if !r.Reject || r.Error.First() != c.want {
			t.Errorf("re-creation with %+v: %+v, want %v", c.pe.Policy, r.Error, c.want)
		}
	}
	if f.st.Pools() != 1 {
		t.Fatal("a refused registration created the pool")
	}
	f.register(1, "p", rrPE(1, "10.0.0.2"))
	// The pool is back: its own consistency rules apply, and the
	// attacker may join it with the same policy.
	f.register(att[0], "p", rrPE(2, "10.0.0.9"))
	if s := f.c.Stats(); s.GraceRefused != 3 {
		t.Errorf("GraceRefused %d", s.GraceRefused)
	}
}

// IDGrace negative turns the grace off; MaxGraceEntries bounds the table.
func TestServerGraceBounds(t *testing.T) {
	f := newSrv(t, func(c *ASAPConfig) { c.IDGrace = -1 }, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	f.register(1, "p", rrPE(1, "10.0.0.2"))
	f.register(1, "q", rrPE(1, "10.0.0.2"))
	att := f.reporters(3, "10.0.0.9")
	f.failCheck(att, "p", 1)
	f.register(att[0], "p", rrPE(1, "10.0.0.9"))

	g := newSrv(t, func(c *ASAPConfig) {
		c.MaxGraceEntries = 3
		c.KeepAliveInterval = time.Hour // association 1 stays up
	}, handlespace.Config{})
	g.accept(1, "10.0.0.2")
	g.register(1, "keep", rrPE(1, "10.0.0.2"))
	att = g.reporters(3, "10.0.0.9")
	for id := uint32(1); id <= 10; id++ {
		g.register(1, "p", rrPE(id, "10.0.0.2"))
		g.failCheck(att, "p", id)
		if n := g.c.GraceEntries(); n > 3 {
			t.Fatalf("%d grace entries, bound 3", n)
		}
	}
	if q := len(g.c.grace.q) - g.c.grace.head; q > 3*3 {
		t.Errorf("grace queue holds %d records", q)
	}
	// The newest identifiers are held, the oldest were let go.
	r := srvOne[*tlv.RegistrationResponse](t, g.feed(att[0], reg("p", rrPE(10, "10.0.0.9"))))
	if !r.Reject {
		t.Error("newest identifier not held")
	}
	g.register(att[0], "p", rrPE(1, "10.0.0.9"))
}

// Reports and deregistrations about a PE whose home is another registrar
// (entries ENRP puts into the store) change nothing: only its home may
// check and remove it. On the old code three reports removed it, and so
// did one deregistration from any association.
func TestServerForeignPEsUntouched(t *testing.T) {
	f := newSrv(t, nil, handlespace.Config{})
	foreign := rrPE(5, "10.0.0.5")
	foreign.HomeServerID = 0x77
	if _, err := f.st.Register(f.now, tlv.PoolHandle("p"), &foreign, time.Time{}); err != nil {
		t.Fatal(err)
	}
	before := f.st.Checksum(0x77)
	att := f.reporters(4, "10.0.0.9")
	if outs := f.reportAll(att, "p", 5); len(outs) != 0 {
		t.Fatalf("reports about a foreign PE: %v", outs)
	}
	outs := f.feed(att[0], &tlv.Deregistration{PoolHandle: tlv.PoolHandle("p"), PEID: 5})
	if r := srvOne[*tlv.DeregistrationResponse](t, outs); r.Error.First() != tlv.CauseRejectedSecurity {
		t.Fatalf("deregistration of a foreign PE: %+v", r)
	}
	if len(removedEvs(outs)) != 0 {
		t.Fatal("removal event for a foreign PE")
	}
	f.tick(time.Hour)
	pe, info, ok := f.st.Lookup(tlv.PoolHandle("p"), 5)
	if !ok || pe.HomeServerID != 0x77 || info.UnreachableReports != 0 || f.st.Checksum(0x77) != before {
		t.Fatalf("foreign PE changed: ok=%v %+v %+v", ok, pe, info)
	}
	if s := f.c.Stats(); s.UnreachableIgnored != 4 || s.DeregistrationsRefd != 1 || s.UnreachableRemoved != 0 || s.Deregistrations != 0 {
		t.Errorf("stats %+v", s)
	}
}

// RFC 5355 §3 (RSPLIB -maxeurate, -maxhrrate): per-association token
// buckets of RateLimitBurst for Endpoint Unreachable and Handle
// Resolution; messages over the rate are dropped unanswered and counted.
func TestServerReportAndResolutionRates(t *testing.T) {
	f := newSrv(t, func(c *ASAPConfig) { c.MaxHRRate = 2 }, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	f.register(1, "p", rrPE(1, "10.0.0.2"))
	f.accept(9, "10.0.0.9")
	f.accept(10, "10.0.0.10")
	for range RateLimitBurst + 4 {
		f.feed(9, eu("p", 1))
	}
	s := f.c.Stats()
	if s.EURateDropped != 4 || s.UnreachableReports+s.UnreachableRepeated != RateLimitBurst {
		t.Fatalf("EU burst: %+v", s)
	}
	// DefaultMaxEURate is one a second.
	f.now = f.now.Add(time.Second)
	f.feed(9, eu("p", 1))
	f.feed(9, eu("p", 1))
	if s := f.c.Stats(); s.EURateDropped != 5 {
		t.Errorf("after 1 s: %d dropped, want 5", s.EURateDropped)
	}

	hr := &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("p")}
	answered := func(id AssocID, n int) int {
		k := 0
		for range n {
			k += len(srvMsgs[*tlv.HandleResolutionResponse](f.feed(id, hr)))
		}
		return k
	}
	if got := answered(9, RateLimitBurst+4); got != RateLimitBurst {
		t.Fatalf("HR burst: %d answered", got)
	}
	if got := answered(10, 1); got != 1 {
		t.Fatal("another association was throttled")
	}
	f.now = f.now.Add(time.Second)
	if got := answered(9, 5); got != 2 {
		t.Errorf("after 1 s at 2/s: %d answered", got)
	}
	if s := f.c.Stats(); s.HRRateDropped != 7 || s.Resolutions != RateLimitBurst+3 {
		t.Errorf("HR stats %+v", s)
	}

	// By default resolutions are not limited beyond AssocRate (RSPLIB
	// 3.4.4's default), and Unlimited turns the report limit off.
	g := newSrv(t, func(c *ASAPConfig) { c.MaxEURate = Unlimited }, handlespace.Config{})
	g.accept(9, "10.0.0.9")
	for range 200 {
		g.feed(9, &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("p")})
		g.feed(9, eu("p", 1))
	}
	if s := g.c.Stats(); s.HRRateDropped != 0 || s.EURateDropped != 0 || s.Resolutions != 200 {
		t.Errorf("defaults: %+v", s)
	}
}

// Issue finding 3 (RSPLIB -autoclosetimeout): an association that
// carries no PE and sends nothing for IdleTimeout is aborted; one with a
// PE is not, until its last PE is gone and it has been silent that long.
// On the old code an idle association stayed open for ever.
func TestServerIdleAssociations(t *testing.T) {
	f := newSrv(t, func(c *ASAPConfig) {
		c.IdleTimeout = 10 * time.Second
		c.KeepAliveInterval = time.Hour
	}, handlespace.Config{})
	f.accept(1, "10.0.0.2") // PE
	f.accept(2, "10.0.0.3") // PU, resolves at 5 s
	f.accept(3, "10.0.0.4") // silent
	f.register(1, "p", rrPE(1, "10.0.0.2"))
	if d := f.c.NextDeadline(); !d.Equal(srvT0.Add(10 * time.Second)) {
		t.Fatalf("deadline %v, want the idle timeout", d.Sub(srvT0))
	}
	f.now = f.now.Add(5 * time.Second)
	f.feed(2, &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("p")})
	outs := f.tick(5 * time.Second)
	if ab := srvOnly[CloseAssoc](outs); len(ab) != 1 || ab[0].Assoc != 3 || ab[0].Reason != CloseIdle {
		t.Fatalf("at 10 s: %v", outs)
	}
	if d := f.c.NextDeadline(); !d.Equal(srvT0.Add(15 * time.Second)) {
		t.Fatalf("deadline %v, want the PU's idle timeout", d.Sub(srvT0))
	}
	if ab := srvOnly[CloseAssoc](f.tick(5 * time.Second)); len(ab) != 1 || ab[0].Assoc != 2 {
		t.Fatalf("at 15 s: %v", ab)
	}
	if ab := srvOnly[CloseAssoc](f.tick(time.Minute)); len(ab) != 0 || f.c.Associations() != 1 {
		t.Fatalf("PE association aborted: %v", ab)
	}
	// Its PE leaves: the association is idle from then on.
	f.feed(1, &tlv.Deregistration{PoolHandle: tlv.PoolHandle("p"), PEID: 1})
	if ab := srvOnly[CloseAssoc](f.tick(10*time.Second - 1)); len(ab) != 0 {
		t.Fatal("aborted early")
	}
	if ab := srvOnly[CloseAssoc](f.tick(1)); len(ab) != 1 || ab[0].Assoc != 1 || f.c.Associations() != 0 {
		t.Fatalf("after its PE left: %v", ab)
	}
	if s := f.c.Stats(); s.IdleAborted != 3 {
		t.Errorf("IdleAborted %d", s.IdleAborted)
	}
	if !f.c.NextDeadline().IsZero() {
		t.Errorf("deadline left: %v", f.c.NextDeadline())
	}

	g := newSrv(t, func(c *ASAPConfig) { c.IdleTimeout = -1 }, handlespace.Config{})
	g.accept(3, "10.0.0.4")
	if outs := g.tick(24 * time.Hour); len(outs) != 0 || g.c.Associations() != 1 {
		t.Errorf("IdleTimeout off: %v", outs)
	}
	h := newSrv(t, nil, handlespace.Config{})
	h.accept(3, "10.0.0.4")
	if d := h.c.NextDeadline(); !d.Equal(srvT0.Add(DefaultIdleTimeout)) {
		t.Errorf("default idle deadline %v", d.Sub(srvT0))
	}
}

func TestServerDefenceConfig(t *testing.T) {
	for _, cfg := range []ASAPConfig{
		{MaxEURate: -3},
		{MaxHRRate: math.NaN()},
		{MaxGraceEntries: -2},
	} {
		if _, err := newTestCore(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: err %v", cfg, err)
		}
	}
	c, err := newTestCore(ASAPConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.MaxEURate != DefaultMaxEURate || c.cfg.MaxHRRate != DefaultMaxHRRate || c.cfg.IDGrace != DefaultIDGrace ||
		c.cfg.MaxGraceEntries != DefaultMaxGraceEntries || c.cfg.IdleTimeout != DefaultIdleTimeout {
		t.Errorf("defaults not applied: %+v", c.cfg)
	}
	for _, r := range []CloseReason{CloseIdle, CloseKeepAlive, 0} {
		if r.String() == "" {
			t.Errorf("CloseReason(%d) has no name", r)
		}
	}
}
