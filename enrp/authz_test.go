package enrp

import (
	"crypto/x509"
	"errors"
	"testing"

	"github.com/go-rserpool/rserpool/handlespace"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// Authorization by verified identities (RFC 5355, RFC 5352 §6, RFC
// 5353 §6): the NamePolicy helper, and the Core's hooks fed AssocInfos
// that carry identities.

// named is an authenticated AssocInfo with identity name (and, when sans
// is given, a leaf certificate with those DNS SANs).
func named(ip, name string, sans ...string) AssocInfo {
	id := transport.Identity{Name: name}
	if len(sans) > 0 {
		id.Certificates = []*x509.Certificate{{DNSNames: sans}}
	}
	return AssocInfo{Local: srvMem("10.0.0.1:3863"), Remote: srvMem(ip + ":40000"), Identity: id, Authenticated: true}
}

func anonymous(ip string) AssocInfo {
	return AssocInfo{Local: srvMem("10.0.0.1:3863"), Remote: srvMem(ip + ":40000")}
}

func TestMatchIdentity(t *testing.T) {
	cert := transport.Identity{Name: "node-7", Certificates: []*x509.Certificate{{DNSNames: []string{"pe7.pool.example.org", "alt.example.net"}}}}
	cases := []struct {
		id      transport.Identity
		pattern string
		want    bool
	}{
		{transport.Identity{Name: "pe1.pool.example.org"}, "pe1.pool.example.org", true},
		{transport.Identity{Name: "pe1.pool.example.org"}, "*.pool.example.org", true},
		{transport.Identity{Name: "a.b.pool.example.org"}, "*.pool.example.org", true}, // '*' spans dots
		{transport.Identity{Name: "pool.example.org"}, "*.pool.example.org", false},
		{transport.Identity{Name: "pe1.pool.example.org.evil"}, "*.pool.example.org", false},
		{transport.Identity{Name: "PE1.Pool.Example.ORG"}, "pe1.pool.example.org", true}, // case-insensitive
		{transport.Identity{Name: "pe1.pool.example.org"}, "PE?.pool.example.org", true},
		{transport.Identity{Name: "pe1/x"}, "pe1*", false}, // '*' stops at '/'
		{cert, "node-7", true},               // the Name
		{cert, "*.pool.example.org", true},   // a SAN
		{cert, "alt.example.net", true},      // another SAN
		{cert, "*.other.example.org", false}, // neither
		{transport.Identity{}, "*", false},   // no name, no certificate
		{transport.Identity{Name: "x"}, "", false},
		{transport.Identity{Name: "x"}, "[", false}, // malformed
	}
	for _, tc := range cases {
		if got := MatchIdentity(tc.id, tc.pattern); got != tc.want {
			t.Errorf("MatchIdentity(%v, %q) = %v, want %v", tc.id, tc.pattern, got, tc.want)
		}
	}
}

func TestPoolACL(t *testing.T) {
	rules := map[string][]string{
		"echo":   {"*.pe.example.org", "backup.example.net"},
		"closed": {},
	}
	open := PoolACL{Pools: rules}
	shut := PoolACL{Pools: rules, Closed: true}
	cases := []struct {
		name string
		acl  PoolACL
		info AssocInfo
		pool string
		want error // nil, ErrUnauthenticated or ErrNotAuthorized
	}{
		{"rule/name-matches", open, named("10.0.0.2", "a.pe.example.org"), "echo", nil},
		{"rule/second-pattern", open, named("10.0.0.2", "backup.example.net"), "echo", nil},
		{"rule/san-matches", open, named("10.0.0.2", "host-9", "b.pe.example.org"), "echo", nil},
		{"rule/no-match", open, named("10.0.0.2", "rogue.example.com", "rogue.example.com"), "echo", ErrNotAuthorized},
		{"rule/unauthenticated", open, anonymous("10.0.0.2"), "echo", ErrUnauthenticated},
		{"rule/empty-admits-nobody", open, named("10.0.0.2", "a.pe.example.org"), "closed", ErrNotAuthorized},
		{"norule/open", open, named("10.0.0.2", "rogue.example.com"), "other", nil},
		{"norule/open-unauthenticated", open, anonymous("10.0.0.2"), "other", nil},
		{"norule/closed", shut, named("10.0.0.2", "a.pe.example.org"), "other", ErrNotAuthorized},
		{"norule/closed-unauthenticated", shut, anonymous("10.0.0.2"), "other", ErrNotAuthorized},
		{"closed/rule-still-admits", shut, named("10.0.0.2", "a.pe.example.org"), "echo", nil},
		{"zero-acl", PoolACL{}, anonymous("10.0.0.2"), "echo", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.acl.Check(tc.info, tlv.PoolHandle(tc.pool))
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
			// The hooks agree with Check.
			if got := tc.acl.Registration()(tc.info, tlv.PoolHandle(tc.pool), &tlv.PoolElement{}); (got == nil) != (err == nil) {
				t.Fatalf("Registration hook %v, Check %v", got, err)
			}
			if got := tc.acl.Resolution()(tc.info, tlv.PoolHandle(tc.pool)); (got == nil) != (err == nil) {
				t.Fatalf("Resolution hook %v, Check %v", got, err)
			}
		})
	}
}

func TestPeerMatcher(t *testing.T) {
	m := PeerMatcher("*.reg.example.org")
	for _, tc := range []struct {
		info AssocInfo
		want error
	}{
		{named("10.0.0.2", "r1.reg.example.org"), nil},
		{named("10.0.0.2", "r1", "r1.reg.example.org"), nil},
		{named("10.0.0.2", "rogue.example.com"), ErrNotAuthorized},
		{anonymous("10.0.0.2"), ErrUnauthenticated},
	} {
		if err := m(0x1234, tc.info); tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("PeerMatcher(%v) = %v, want %v", tc.info.Identity, err, tc.want)
		}
	}
	if err := PeerMatcher()(1, named("10.0.0.2", "r1.reg.example.org")); !errors.Is(err, ErrNotAuthorized) {
		t.Errorf("no patterns admitted a peer: %v", err)
	}
}

func TestNamePolicyApply(t *testing.T) {
	for _, bad := range []NamePolicy{
		{Register: PoolACL{Pools: map[string][]string{"p": {"["}}}},
		{Resolve: PoolACL{Pools: map[string][]string{"p": {""}}}},
		{Peers: []string{"a[b"}},
	} {
		var cfg Config
		if err := bad.Apply(&cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Apply(%+v) = %v, want ErrInvalidConfig", bad, err)
		}
		if cfg.ASAP.Authorize != nil || cfg.ASAP.AuthorizeResolution != nil || cfg.Peers.Accept != nil {
			t.Errorf("a rejected policy set hooks")
		}
	}
	// An open policy sets no hook: resolution costs nothing more.
	var cfg Config
	if err := (NamePolicy{}).Apply(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.ASAP.Authorize != nil || cfg.ASAP.AuthorizeResolution != nil || cfg.Peers.Accept != nil {
		t.Fatal("an open policy set hooks")
	}
	p := NamePolicy{
		Register: PoolACL{Pools: map[string][]string{"echo": {"*.pe.example.org"}}},
		Resolve:  PoolACL{Closed: true},
		Peers:    []string{"*.reg.example.org"},
	}
	if err := p.Apply(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.ASAP.Authorize == nil || cfg.ASAP.AuthorizeResolution == nil || cfg.Peers.Accept == nil {
		t.Fatal("hooks not set")
	}
	if cfg.ASAP.Authorize(named("10.0.0.2", "x.pe.example.org"), tlv.PoolHandle("echo"), &tlv.PoolElement{}) != nil ||
		cfg.ASAP.Authorize(named("10.0.0.2", "rogue"), tlv.PoolHandle("echo"), &tlv.PoolElement{}) == nil ||
		cfg.ASAP.AuthorizeResolution(named("10.0.0.2", "x.pe.example.org"), tlv.PoolHandle("echo")) == nil ||
		cfg.Peers.Accept(1, named("10.0.0.2", "r.reg.example.org")) != nil {
		t.Fatal("installed hooks do not follow the policy")
	}
}

// acceptAs opens association id with info.
func (f *srvFixture) acceptAs(id AssocID, info AssocInfo) { f.c.HandleAccepted(f.now, id, info) }

// RFC 5352 §3.2, RFC 5355 §3: a rogue PE (an identity the pool's rule does
// not name, or none) is refused with 0xa and changes nothing; the
// authorised one registers. The hook sees the identity the host gave.
func TestServerAuthorizeIdentity(t *testing.T) {
	p := NamePolicy{Register: PoolACL{Pools: map[string][]string{"echo": {"*.pe.example.org"}}}}
	var seen []transport.Identity
	f := newSrv(t, func(c *ASAPConfig) {
		c.Authorize = func(a AssocInfo, h tlv.PoolHandle, pe *tlv.PoolElement) error {
			seen = append(seen, a.Identity)
			return p.Register.Check(a, h)
		}
	}, handlespace.Config{})
	f.acceptAs(1, named("10.0.0.2", "good.pe.example.org"))
	f.acceptAs(2, named("10.0.0.3", "rogue.example.com"))
	f.acceptAs(3, anonymous("10.0.0.4"))
	f.register(1, "echo", rrPE(1, "10.0.0.2"))
	before, pes := f.st.Checksum(srvID), f.st.PEs()
	for _, tc := range []struct {
		assoc AssocID
		pe    tlv.PoolElement
	}{{2, rrPE(2, "10.0.0.3")}, {3, rrPE(3, "10.0.0.4")}, {2, rrPE(1, "10.0.0.3")}} {
		r := srvOne[*tlv.RegistrationResponse](t, f.feed(tc.assoc, reg("echo", tc.pe)))
		if !r.Reject || r.Error.First() != tlv.CauseRejectedSecurity {
			t.Fatalf("rogue registration on %d: %+v, want R=1 with 0xa", tc.assoc, r)
		}
	}
	if f.st.Checksum(srvID) != before || f.st.PEs() != pes {
		t.Fatal("a refused registration changed the store")
	}
	if got := f.c.Stats().RegistrationsRefd; got != 3 {
		t.Fatalf("RegistrationsRefd %d, want 3", got)
	}
	// Other pools have no rule: open, even to the rogue.
	f.register(2, "other", rrPE(5, "10.0.0.3"))
	if len(seen) != 5 || seen[0].Name != "good.pe.example.org" || seen[1].Name != "rogue.example.com" || !seen[2].IsZero() {
		t.Fatalf("identities seen by the hook: %v", seen)
	}
}

// RFC 5352 §3.5 with AuthorizeResolution (RFC 5355 §3): an unauthorised or
// unauthenticated pool user gets a Handle Resolution Response with an
// Operation Error 0xa and no PEs, at once, counted; the authorised one
// gets the PEs. Without the hook anyone resolves.
func TestServerAuthorizeResolution(t *testing.T) {
	acl := PoolACL{Pools: map[string][]string{"echo": {"*.pu.example.org"}}}
	f := newSrv(t, func(c *ASAPConfig) { c.AuthorizeResolution = acl.Resolution() }, handlespace.Config{})
	f.acceptAs(1, named("10.0.0.2", "pe.example.org"))
	f.acceptAs(2, named("10.0.0.3", "app.pu.example.org"))
	f.acceptAs(3, named("10.0.0.4", "rogue.example.com"))
	f.acceptAs(4, anonymous("10.0.0.5"))
	f.register(1, "echo", rrPE(1, "10.0.0.2"))

	hr := srvOne[*tlv.HandleResolutionResponse](t, f.feed(2, &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("echo")}))
	if hr.Error != nil || len(hr.PEs) != 1 || hr.PEs[0].ID != 1 {
		t.Fatalf("authorised resolution: %+v", hr)
	}
	for _, id := range []AssocID{3, 4} {
		outs := f.feed(id, &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("echo")})
		hr := srvOne[*tlv.HandleResolutionResponse](t, outs)
		if string(hr.PoolHandle) != "echo" || hr.Error.First() != tlv.CauseRejectedSecurity || len(hr.PEs) != 0 || hr.Policy != nil {
			t.Fatalf("refused resolution on %d: %+v", id, hr)
		}
		if s := srvOnly[SendASAP](outs); len(s) != 1 || s[0].Assoc != id {
			t.Fatalf("outputs %v", outs)
		}
	}
	// A pool without a rule resolves as ever (Unknown Pool Handle here).
	if hr := srvOne[*tlv.HandleResolutionResponse](t, f.feed(3, &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("none")})); hr.Error.First() != tlv.CauseUnknownPoolHandle {
		t.Fatalf("pool without a rule: %+v", hr)
	}
	if s := f.c.Stats(); s.ResolutionsRefused != 2 || s.Resolutions != 4 {
		t.Fatalf("Resolutions %d, ResolutionsRefused %d; want 4, 2", s.Resolutions, s.ResolutionsRefused)
	}

	// No hook: the same rogue resolves.
	g := newSrv(t, nil, handlespace.Config{})
	g.acceptAs(1, named("10.0.0.2", "pe.example.org"))
	g.acceptAs(3, named("10.0.0.4", "rogue.example.com"))
	g.register(1, "echo", rrPE(1, "10.0.0.2"))
	if hr := srvOne[*tlv.HandleResolutionResponse](t, g.feed(3, &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("echo")})); hr.Error != nil || len(hr.PEs) != 1 {
		t.Fatalf("resolution without a hook: %+v", hr)
	}
}
