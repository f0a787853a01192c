package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/internal/dtlsflags"
	"github.com/go-rserpool/rserpool/internal/dtlstest"
	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/internal/testpki"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
	"github.com/go-rserpool/rserpool/transport/sctp"
)

// -http: the status page, its JSON and expvar are served on 127.0.0.1,
// and events still reach the printing loop through the page.
func TestServeStatus(t *testing.T) {
	leakcheck.Check(t)
	n := memnet.New(1)
	defer n.Close()
	nd := n.NewNode()
	events := make(chan enrp.Event, 8)
	reg, err := enrp.New(enrp.Config{ServerID: 0xabcd, Transport: nd, ListenAddr: nd.Addr(transport.PortASAP), Events: events})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- reg.Run(ctx) }()
	defer func() { reg.Close(); <-ran }()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan enrp.Event, 8)
	stop := serveStatus(ctx, l, reg, events, out)
	defer stop()
	events <- enrp.Event{Kind: enrp.EventRegistered, PoolHandle: []byte("p"), PEID: 1}
	select {
	case ev := <-out:
		if ev.PEID != 1 {
			t.Errorf("forwarded %v", ev)
		}
	case <-ctx.Done():
		t.Fatal("event not forwarded")
	}

	get := func(path string) string {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+l.Addr().String()+path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, res.StatusCode, b)
		}
		return string(b)
	}
	if page := get("/"); !strings.Contains(page, "0x0000abcd") {
		t.Errorf("page lacks the server ID:\n%s", page)
	}
	var p struct {
		ServerID string `json:"server_id"`
	}
	if err := json.Unmarshal([]byte(get("/json")), &p); err != nil || p.ServerID != "0x0000abcd" {
		t.Errorf("JSON: %v, server_id %q", err, p.ServerID)
	}
	var vars map[string]json.RawMessage
	if err := json.Unmarshal([]byte(get("/debug/vars")), &vars); err != nil || vars["registrar"] == nil {
		t.Errorf("expvar: %v, no registrar in %v", err, vars)
	}
	http.DefaultClient.CloseIdleConnections()
}

// startRun runs the program with o (its started hook set here) until the
// test ends, when it checks that run returned no error, and returns the
// program's registrar once it runs; or run's error, when run returns
// first.
func startRun(t *testing.T, ctx context.Context, o options) (*enrp.Registrar, error) {
	t.Helper()
	rctx, stop := context.WithCancel(ctx)
	ran, got := make(chan error, 1), make(chan *enrp.Registrar, 1)
	o.started = func(r *enrp.Registrar) { got <- r }
	go func() { ran <- run(rctx, o) }()
	select {
	case r := <-got:
		t.Cleanup(func() {
			stop()
			if err := <-ran; err != nil {
				t.Errorf("run: %v", err)
			}
		})
		return r, nil
	case err := <-ran:
		stop()
		return nil, err
	}
}

// mustStartRun is startRun for a run that must start.
func mustStartRun(t *testing.T, ctx context.Context, o options) *enrp.Registrar {
	t.Helper()
	r, err := startRun(t, ctx, o)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return r
}

// waitPeered waits until at's peer table holds peer, and only it.
func waitPeered(t *testing.T, ctx context.Context, at, peer *enrp.Registrar) {
	t.Helper()
	for {
		ps, err := at.Peers(ctx)
		if err != nil && !errors.Is(err, enrp.ErrNotRunning) { // started runs as Run begins
			t.Fatal(err)
		}
		if len(ps) == 1 && ps[0].ServerID == peer.ServerID() {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%08x never peered with %08x: %+v", at.ServerID(), peer.ServerID(), ps)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// -peer, -enrp-listen: the flags reach the registrar's Config; a bad
// address is refused with the flag's name.
func TestRunPeerFlags(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, options{listen: "127.0.0.1:0", peers: []string{"nonsense"}}); err == nil || !strings.Contains(err.Error(), "-peer") {
		t.Errorf("bad -peer: %v", err)
	}
	if err := run(ctx, options{listen: "127.0.0.1:0", enrpListen: "nonsense"}); err == nil || !strings.Contains(err.Error(), "-enrp-listen") {
		t.Errorf("bad -enrp-listen: %v", err)
	}
	mustStartRun(t, ctx, options{listen: "127.0.0.1:0", enrpListen: "127.0.0.1:0", peers: []string{"127.0.0.1:1", "127.0.0.2:2"}})
}

// -peer: a registrar started with -peer names another, and the two peer
// over loopback SCTP (RFC 5353), the second through a separate ENRP
// listener (-enrp-listen).
func TestRunPeers(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r1 := mustStartRun(t, ctx, options{listen: "127.0.0.1:0", enrpListen: "127.0.0.1:0"})
	r2 := mustStartRun(t, ctx, options{listen: "127.0.0.1:0", peers: []string{r1.ENRPAddr().String()}})
	waitPeered(t, ctx, r1, r2)
	waitPeered(t, ctx, r2, r1)
}

// -enrp-announce: two registrars find each other by ENRP Presence
// multicast on the loopback interface alone (RFC 5353 §3.2), on a group
// of this test's own.
func TestRunENRPAnnounce(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	group := fmt.Sprintf("239.255.51.%d:%d", 1+os.Getpid()%250, 20000+os.Getpid()%20000)
	var regs []*enrp.Registrar
	for range 2 {
		r, err := startRun(t, ctx, options{listen: "127.0.0.1:0", enrpAnnounce: true, enrpGroup: group})
		if err != nil {
			t.Skipf("no multicast on lo here: %v", err)
		}
		regs = append(regs, r)
	}
	waitPeered(t, ctx, regs[0], regs[1])
}

// regPKI is a CA of the test's own and the registrar's certificate and
// key from it (reg-1.reg.example), as PEM files in dir.
func regPKI(t *testing.T) (ca *testpki.CA, dir, certFile, keyFile string) {
	t.Helper()
	dir = t.TempDir()
	ca = testpki.NewCA(t, "registrar test CA")
	certFile, keyFile = testpki.WritePEM(t, dir, "reg", ca.Leaf(t, "reg-1.reg.example"))
	return ca, dir, certFile, keyFile
}

// -tls-cert, -tls-key, -tls-ca, -allow-pe, -allow-pu: the registrar runs
// over SCTP over DTLS with the PEM files given; a PE whose certificate
// name -allow-pe allows registers, another is refused with 0xa; a PU
// -allow-pu allows resolves, another is refused with 0xa.
func TestRunDTLS(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ca, dir, certFile, keyFile := regPKI(t)
	o := options{listen: "127.0.0.1:0",
		sec:     dtlsflags.Files{Cert: certFile, Key: keyFile, CA: ca.WritePEM(t, dir, "ca")},
		allowPE: []string{"echo=*.pe.example"}, allowPU: []string{"echo=*.pu.example"}, allowPeer: []string{"*.reg.example"}}
	reg := mustStartRun(t, ctx, o)
	tr := func(name string) *sctp.Transport { return dtlstest.Transport(t, ca, name) }
	regs := []transport.Addr{reg.Addr()}
	user := transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("127.0.0.1:1234")}
	ut, err := asap.TransportParam(user, tlv.TransportUseDataOnly)
	if err != nil {
		t.Fatal(err)
	}
	register := func(name string, id uint32) error {
		pe, err := asap.NewPoolElement(asap.PEConfig{PoolHandle: []byte("echo"), PEID: id, UserTransport: ut, Registrars: regs, MaxAccepted: -1}, tr(name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pe.Close() })
		return pe.Register(ctx)
	}
	resolve := func(name string) ([]tlv.PoolElement, error) {
		pu, err := asap.NewPoolUser(asap.PUConfig{Registrars: regs}, tr(name))
		if err != nil {
			t.Fatal(err)
		}
		defer pu.Close()
		return pu.Resolve(ctx, []byte("echo"))
	}
	if err := register("pe-1.pe.example", 1); err != nil {
		t.Fatalf("allowed PE: %v", err)
	}
	var re *asap.RejectError
	if err := register("pe-2.other.example", 2); !errors.As(err, &re) || re.Code() != tlv.CauseRejectedSecurity {
		t.Fatalf("PE -allow-pe does not allow: %v, want 0xa", err)
	}
	if _, err := resolve("app.other.example"); !errors.As(err, &re) || re.Code() != tlv.CauseRejectedSecurity {
		t.Fatalf("PU -allow-pu does not allow: %v, want 0xa", err)
	}
	if pes, err := resolve("app.pu.example"); err != nil || len(pes) != 1 || pes[0].ID != 1 {
		t.Fatalf("allowed PU resolved %+v (%v), want the allowed PE", pes, err)
	}
	if s := reg.Stats().ASAP; s.Registrations != 1 || s.RegistrationsRefd != 1 || s.ResolutionsRefused != 1 {
		t.Errorf("registrar: %d registrations, %d refused, %d resolutions refused; want 1, 1, 1", s.Registrations, s.RegistrationsRefd, s.ResolutionsRefused)
	}
}

// The DTLS flags' misconfigurations are errors at start, naming the flag.
func TestRunDTLSFlagErrors(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ca, dir, certFile, keyFile := regPKI(t)
	sec := dtlsflags.Files{Cert: certFile, Key: keyFile, CA: ca.WritePEM(t, dir, "ca")}
	for _, c := range []struct {
		o    options
		want string
	}{
		{options{sec: dtlsflags.Files{Cert: certFile}}, "-tls-cert without -tls-key"},
		{options{sec: dtlsflags.Files{Cert: keyFile, Key: keyFile}}, "-tls-cert"},
		{options{sec: dtlsflags.Files{Cert: certFile, Key: keyFile}}, "-tls-cert needs -tls-ca"},
		{options{allowPE: []string{"echo=*.pe.example"}}, "need SCTP over DTLS"},
		{options{allowPeer: []string{"*.reg.example"}}, "need SCTP over DTLS"},
		{options{sec: sec, allowPE: []string{"echo"}}, "-allow-pe"},
		{options{sec: sec, allowPU: []string{"echo=[x"}}, "-allow-pu"},
		{options{sec: sec, allowPeer: []string{"[x"}}, "-allow-peer"},
	} {
		c.o.listen = "127.0.0.1:0"
		if err := run(ctx, c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error saying %q", c.o, err, c.want)
		}
	}
}

// -no-address-check: a PE behind NAT (its user address is not the
// association's, as RSPLIB's PEs in a qemu VM appear from 127.0.0.1) is
// stored as sent; without the flag the registrar refuses it with Invalid
// Values (RFC 5352 §3.2).
func TestRunNoAddressCheck(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	natted := transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("10.0.2.15:7777")}
	for _, off := range []bool{false, true} {
		r := mustStartRun(t, ctx, options{listen: "127.0.0.1:0", noAddrCheck: off})
		ut, err := asap.TransportParam(natted, tlv.TransportUseDataOnly)
		if err != nil {
			t.Fatal(err)
		}
		pe, err := asap.NewPoolElement(asap.PEConfig{
			PoolHandle:    []byte("nat"),
			UserTransport: ut,
			Registrars:    []transport.Addr{r.Addr()},
		}, sctp.New(sctp.Config{}))
		if err != nil {
			t.Fatal(err)
		}
		err = pe.Register(ctx)
		if !off {
			pe.Close()
			var rej *asap.RejectError
			if !errors.As(err, &rej) || rej.Code() != tlv.CauseInvalidValues {
				t.Fatalf("with the check: Register = %v, want Invalid Values", err)
			}
			continue
		}
		if err != nil {
			pe.Close()
			t.Fatalf("-no-address-check: Register = %v", err)
		}
		pes, err := r.PoolElements(ctx, []byte("nat"))
		if err != nil || len(pes) != 1 {
			t.Fatalf("PoolElements = %v, %v; want the PE", pes, err)
		}
		if got, err := asap.AddrOf(pes[0].PE.UserTransport, transport.KindSCTPUDP); err != nil || got.AddrPort != natted.AddrPort {
			t.Fatalf("stored user transport %v (%v), want %v as sent", got, err, natted)
		}
		pe.Close() // only now: Close deregisters
	}
}
