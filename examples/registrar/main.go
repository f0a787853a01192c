// Command registrar runs an RSerPool registrar (an ENRP server, RFC 5353,
// serving ASAP, RFC 5352) over user-space SCTP: pool elements register
// with it, pool users resolve pool handles with it. With -announce it also
// multicasts ASAP_SERVER_ANNOUNCEs on the loopback interface (RFC 5352
// §3.6), so that endpoints on this host can find it without its address.
// It prints every registration, update and removal (with its reason) as
// the registrar reports them, and stops on SIGINT. With -http it also
// serves a status page (package enrp/status) at /, its JSON at /json, and
// the registrar's counts as the expvar variable "registrar" at
// /debug/vars; off by default.
//
// Registrars peer with ENRP (RFC 5353): -peer names a peer's ENRP address
// (repeat it for several), -enrp-listen opens a separate ENRP listener
// (without it, peers associate to the ASAP listener and the registrar
// tells ENRP from ASAP by PPID), and -enrp-announce sends and receives
// ENRP Presence multicasts on the loopback interface (group -enrp-group,
// 239.0.0.51:9901 by default), so that registrars on this host find each
// other without -peer. Peers coming up and going down, and takeovers, are
// printed with the PE events.
//
//	go run ./examples/registrar -listen 127.0.0.1:9899 -announce -http 127.0.0.1:8080
//	go run ./examples/registrar -listen 127.0.0.1:9898 -peer 127.0.0.1:9899
//
// A peer named sctp:IP:PORT is a kernel SCTP registrar (RSPLIB's
// rspregistrar, say) reached over RFC 6951 UDP encapsulation at UDP port
// -kernel-encap-port (its net.sctp.udp_port, 9899 by default):
//
//	go run ./examples/registrar -listen 127.0.0.1:9903 -enrp-listen 127.0.0.1:9900 -peer sctp:127.0.0.1:9901
//
// Security (RFC 5355, RFC 5352 §6, RFC 5353 §6): -tls-cert and -tls-key
// (PEM files, with -tls-ca the pool operator's CA) turn on SCTP over DTLS
// (RFC 8261) for every association, ASAP and ENRP: peers, PEs and PUs must
// present a certificate the CA signed, and the registrar's own is checked
// by them. -allow-pe pool=pattern and -allow-pu pool=pattern (repeatable)
// then say whose certificates (by DNS SAN or common name, path.Match
// globs) may register in and resolve a pool (others get Rejected due to
// security considerations, 0xa); pools without a rule stay open.
// -allow-peer pattern (repeatable) names the registrars that may peer.
// Handshake failures are logged.
//
//	go run ./examples/registrar -tls-cert reg.pem -tls-key reg-key.pem -tls-ca ca.pem \
//		-allow-pe 'echo=*.pe.example.org' -allow-pu 'echo=*.pu.example.org' -allow-peer '*.reg.example.org'
package main

import (
	"context"
	"expvar"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/enrp/status"
	"github.com/go-rserpool/rserpool/internal/dtlsflags"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/multicast"
	"github.com/go-rserpool/rserpool/transport/sctp"
)

// options are the command line's.
type options struct {
	listen       string
	announce     bool
	group        string
	kaInterval   time.Duration
	kaTimeout    time.Duration
	noAddrCheck  bool // -no-address-check
	httpAddr     string
	verbose      bool
	peers        []string // -peer, repeatable
	enrpListen   string   // -enrp-listen; empty: ENRP on the ASAP listener
	enrpAnnounce bool
	enrpGroup    string
	kernelEncap  uint
	advertise    []string              // -enrp-advertise, repeatable
	heartbeat    time.Duration         // -peer-heartbeat
	sec          dtlsflags.Files       // -tls-cert, -tls-key, -tls-ca
	allowPE      []string              // -allow-pe pool=pattern, repeatable
	allowPU      []string              // -allow-pu pool=pattern, repeatable
	allowPeer    []string              // -allow-peer pattern, repeatable
	started      func(*enrp.Registrar) // tests: called once the registrar runs
}

func main() {
	var o options
	flag.StringVar(&o.listen, "listen", "127.0.0.1:9899", "ASAP listen address (SCTP over UDP)")
	flag.BoolVar(&o.announce, "announce", false, "multicast ASAP Server Announces on the loopback interface")
	flag.StringVar(&o.group, "group", multicast.DefaultASAPGroup.String(), "announce multicast group and port")
	flag.DurationVar(&o.kaInterval, "keepalive", enrp.DefaultKeepAliveInterval, "keep-alive interval for registered PEs")
	flag.DurationVar(&o.kaTimeout, "keepalive-timeout", enrp.DefaultKeepAliveTimeout, "keep-alive timeout before a PE is removed")
	flag.BoolVar(&o.noAddrCheck, "no-address-check", false, "store PEs' user transport addresses as sent, without checking they belong to the association (for PEs behind NAT; RFC 5352 §3.2 asks for the check)")
	flag.StringVar(&o.httpAddr, "http", "", "serve the status page, its JSON (/json) and expvar (/debug/vars) at this address, e.g. 127.0.0.1:8080; off when empty")
	flag.BoolVar(&o.verbose, "v", false, "log debug messages")
	flag.Func("peer", "ENRP address of a peer registrar (SCTP over UDP), e.g. 127.0.0.1:9898; repeat for several", func(s string) error {
		o.peers = append(o.peers, s)
		return nil
	})
	flag.StringVar(&o.enrpListen, "enrp-listen", "", "separate ENRP listen address (SCTP over UDP); empty: peers use the ASAP listener")
	flag.BoolVar(&o.enrpAnnounce, "enrp-announce", false, "send and receive ENRP Presence multicasts on the loopback interface")
	flag.StringVar(&o.enrpGroup, "enrp-group", multicast.DefaultENRPGroup.String(), "ENRP multicast group and port")
	flag.UintVar(&o.kernelEncap, "kernel-encap-port", 0, "UDP port at which kernel SCTP peers (sctp:IP:PORT addresses) receive encapsulated SCTP, their net.sctp.udp_port; 0: 9899")
	flag.Func("enrp-advertise", "ENRP address sent to peers in the Server Information (default: the ENRP listener's, unless unspecified); repeat for several. RSPLIB ignores loopback addresses there", func(s string) error {
		o.advertise = append(o.advertise, s)
		return nil
	})
	flag.DurationVar(&o.heartbeat, "peer-heartbeat", enrp.DefaultHeartbeatCycle, "PEER-HEARTBEAT-CYCLE, the period of Presence to each peer (RFC 5353 §3.2)")
	o.sec.Register(flag.CommandLine, false)
	flag.Func("allow-pe", "pool=pattern: only PEs whose certificate name matches pattern (a path.Match glob, e.g. echo=*.pe.example.org) may register in pool; repeat for several; needs -tls-cert", func(s string) error {
		o.allowPE = append(o.allowPE, s)
		return nil
	})
	flag.Func("allow-pu", "pool=pattern: only PUs whose certificate name matches pattern may resolve pool; repeat for several; needs -tls-cert", func(s string) error {
		o.allowPU = append(o.allowPU, s)
		return nil
	})
	flag.Func("allow-peer", "pattern: only registrars whose certificate name matches pattern may peer (ENRP); repeat for several; needs -tls-cert", func(s string) error {
		o.allowPeer = append(o.allowPeer, s)
		return nil
	})
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		log.Fatal(err)
	}
}

// joinLoopback joins group (flag name what) on the loopback interface,
// never another one.
func joinLoopback(ctx context.Context, what, group string) (*multicast.Announcer, error) {
	g, err := netip.ParseAddrPort(group)
	if err != nil {
		return nil, fmt.Errorf("-%s: %w", what, err)
	}
	lo, err := multicast.LoopbackInterface()
	if err != nil {
		return nil, err
	}
	return multicast.Listen(ctx, multicast.Config{Group: g, Interface: lo, TTL: 1, Loopback: true})
}

func run(ctx context.Context, o options) error {
	at, err := transport.ParseAddr(o.listen)
	if err != nil {
		return err
	}
	if o.kernelEncap > 65535 {
		return fmt.Errorf("-kernel-encap-port %d: not a port", o.kernelEncap)
	}
	sec, err := o.sec.Config(func(err error) { log.Printf("registrar: %v", err) })
	if err != nil {
		return err
	}
	tr := sctp.New(sctp.Config{KernelEncapsulationPort: uint16(o.kernelEncap), DTLS: sec})
	events := make(chan enrp.Event, 256)
	cfg := enrp.Config{
		Events:     events,
		Transport:  tr,
		ListenAddr: at,
		ASAP:       enrp.ASAPConfig{KeepAliveInterval: o.kaInterval, KeepAliveTimeout: o.kaTimeout, AddressCheck: addressCheck(o.noAddrCheck)},
	}
	if err := authorization(o, sec != nil, &cfg); err != nil {
		return err
	}
	if o.verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg.Peers.HeartbeatCycle = o.heartbeat
	for _, p := range o.advertise {
		a, err := transport.ParseAddr(p)
		if err != nil {
			return fmt.Errorf("-enrp-advertise: %w", err)
		}
		cfg.Peers.ENRPAddrs = append(cfg.Peers.ENRPAddrs, a)
	}
	for _, p := range o.peers {
		a, err := transport.ParseAddr(p)
		if err != nil {
			return fmt.Errorf("-peer: %w", err)
		}
		cfg.Peers.Static = append(cfg.Peers.Static, a)
	}
	if o.announce {
		a, err := joinLoopback(ctx, "group", o.group)
		if err != nil {
			return err
		}
		defer a.Close()
		cfg.Announcer = a
	}
	if o.enrpAnnounce {
		a, err := joinLoopback(ctx, "enrp-group", o.enrpGroup)
		if err != nil {
			return err
		}
		defer a.Close()
		cfg.Peers.Announcer = a
	}
	if o.enrpListen != "" {
		ea, err := transport.ParseAddr(o.enrpListen)
		if err != nil {
			return fmt.Errorf("-enrp-listen: %w", err)
		}
		l, err := tr.Listen(ea)
		if err != nil {
			return fmt.Errorf("-enrp-listen: %w", err)
		}
		defer l.Close()
		cfg.Peers.Listener = l
	}
	reg, err := enrp.New(cfg)
	if err != nil {
		return err
	}
	defer reg.Close()
	log.Printf("registrar %08x listening at %v (announce on lo: %v); ENRP at %v, peers %v, presence on lo: %v",
		reg.ServerID(), reg.Addr(), o.announce, reg.ENRPAddr(), cfg.Peers.Static, o.enrpAnnounce)
	if sec != nil {
		log.Printf("registrar %08x: SCTP over DTLS as %s; may register: %v, may resolve: %v, may peer: %v",
			reg.ServerID(), sec.Certificates[0].Leaf.Subject.CommonName, rules(o.allowPE), rules(o.allowPU), rules(o.allowPeer))
	}

	ran := make(chan error, 1)
	go func() { ran <- reg.Run(ctx) }()
	if o.started != nil {
		o.started(reg)
	}

	// Print each change to the handlespace as the registrar reports it;
	// with -http the status page records it on the way.
	printed := (<-chan enrp.Event)(events)
	if o.httpAddr != "" {
		l, err := net.Listen("tcp", o.httpAddr)
		if err != nil {
			reg.Close()
			<-ran
			return fmt.Errorf("-http: %w", err)
		}
		fwd := make(chan enrp.Event, cap(events))
		stopHTTP := serveStatus(ctx, l, reg, events, fwd)
		defer stopHTTP()
		printed = fwd
	}
	for {
		select {
		case err := <-ran:
			return err
		case ev := <-printed:
			log.Print(ev)
		}
	}
}

// authorization applies -allow-pe, -allow-pu and -allow-peer to cfg as an
// enrp.NamePolicy. They need DTLS: without it no association is
// authenticated, and a rule would refuse every one.
func authorization(o options, secured bool, cfg *enrp.Config) error {
	if !secured && len(o.allowPE)+len(o.allowPU)+len(o.allowPeer) > 0 {
		return fmt.Errorf("-allow-pe, -allow-pu and -allow-peer need SCTP over DTLS (-tls-cert, -tls-key): without it no peer is authenticated and every rule refuses it")
	}
	var p enrp.NamePolicy
	var err error
	if p.Register, err = dtlsflags.ParseACL("allow-pe", o.allowPE); err != nil {
		return err
	}
	if p.Resolve, err = dtlsflags.ParseACL("allow-pu", o.allowPU); err != nil {
		return err
	}
	if o.allowPeer != nil {
		p.Peers = o.allowPeer
	}
	if err := p.Apply(cfg); err != nil {
		return fmt.Errorf("-allow-peer: %w", err)
	}
	return nil
}

// rules prints a rule list for the start-up line.
func rules(r []string) string {
	if len(r) == 0 {
		return "any verified peer"
	}
	return fmt.Sprint(r)
}

// serveStatus serves reg's status page on l: the page at /, its JSON at
// /json, expvar at /debug/vars (reg's counts as "registrar"). The page
// records the events from in and passes them on to out. The returned func
// stops the server and the forwarding and waits for both.
func serveStatus(ctx context.Context, l net.Listener, reg *enrp.Registrar, in <-chan enrp.Event, out chan<- enrp.Event) func() {
	page := status.New(reg, status.Options{})
	if err := status.Publish("registrar", reg); err != nil {
		log.Printf("registrar: expvar: %v", err) // a second registrar in this process
	}
	mux := http.NewServeMux()
	mux.Handle("/", page)
	mux.Handle("/debug/vars", expvar.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fctx, cancel := context.WithCancel(ctx)
	served, forwarded := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(l); err != nil && err != http.ErrServerClosed {
			log.Printf("status page: %v", err)
		}
	}()
	go func() {
		defer close(forwarded)
		page.Forward(fctx, in, out)
	}()
	log.Printf("status page at http://%v/ (JSON at /json, expvar at /debug/vars)", l.Addr())
	return func() {
		cancel()
		srv.Close()
		<-served
		<-forwarded
	}
}

// addressCheck maps -no-address-check to the registrar's AddressCheck.
func addressCheck(off bool) enrp.AddressCheck {
	if off {
		return enrp.AddressCheckOff
	}
	return enrp.AddressCheckAssociation
}
