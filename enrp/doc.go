// Package enrp is the registrar of Reliable Server Pooling: an ENRP server
// (RFC 5353) that serves the Aggregate Server Access Protocol (ASAP,
// RFC 5352) to pool elements (PEs) and pool users (PUs).
//
// A [Registrar] owns a handlespace (package handlespace): pools named by
// pool handles, each holding PEs with their transports and selection
// policy values (RFC 5356). On an ASAP listener it
//
//   - accepts or refuses registrations (RFC 5352 §3.2) with the RFC 5354
//     error causes: Invalid Values, Inconsistent Pooling Policy, Transport
//     Type or Data/Control Configuration, Non-unique PE Identifier, Lack of
//     Resources (store limits and per-association limits), and Rejected due
//     to security considerations (ASAPConfig.Authorize; see Security);
//   - bounds what one peer may take (RFC 5355 §3): the PEs and the pools
//     one association and one source address hold, and the stored size of
//     a PE, whose unknown "skip" parameters are not kept (RFC 5354 §2);
//     see ASAPConfig.MaxPEsPerAssoc and ASAPConfig.MaxPESize with the
//     fields after it. A PE identifier 0 or a user port 0 is Invalid Values;
//   - keeps only user-transport addresses that belong to the PE's
//     association (ASAPConfig.AddressCheck, RFC 5355 address spoofing);
//   - removes PEs on deregistration (§3.4), at the end of their
//     registration life, when they stop answering Endpoint Keep Alive or
//     their association goes down (§3.7), and when MAX-BAD-PE-REPORT
//     associations reported them unreachable (§3.5) and they then miss an
//     immediate keep-alive; a PE removed for a missed keep-alive keeps its
//     identifier and emptied pool for ASAPConfig.IDGrace; reports and
//     deregistrations about PEs another registrar owns change nothing
//     (RFC 5355 §3);
//   - rate-limits reports and resolutions per association
//     (ASAPConfig.MaxEURate, MaxHRRate) and aborts associations that carry no
//     PE and stay silent for ASAPConfig.IdleTimeout, or whose last PE missed a
//     keep-alive;
//   - answers handle resolutions with up to N PEs chosen by the pool's
//     policy (§3.5; N from the HROPT option, default 3, at most 128),
//     leaving out the PEs that would take the answer over 65,535 bytes
//     (an answer, like every message it sends, is shortened, never
//     dropped for its size);
//   - announces itself with ASAP_SERVER_ANNOUNCE every T6 on the multicast
//     Announcer the host configures (§3.6);
//   - answers unknown messages and "report" parameters with ASAP_ERROR
//     (RFC 5354 §2), drops floods per association, and never panics on peer
//     input.
//
// # Usage
//
//	r, err := enrp.New(enrp.Config{
//		Transport:  sctp.New(sctp.Config{}),
//		ListenAddr: transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("127.0.0.1:9899")},
//		Announcer:  ann, // e.g. transport/multicast on the loopback interface; nil: no announces
//	})
//	if err != nil { ... }
//	go r.Run(ctx)   // serves until ctx ends
//	defer r.Close()
//	pools, err := r.Pools(ctx) // read-only view of the handlespace
//
// To follow the PEs, the host passes a buffered channel as Config.Events
// and reads an [Event] for each registration, re-registration and
// removal (with its reason, a [RemoveReason]):
//
//	events := make(chan enrp.Event, 256)
//	r, err := enrp.New(enrp.Config{..., Events: events})
//	...
//	for ev := range events { log.Print(ev) } // e.g. PE 0x0000002a of pool "echo" removed: keep-alive timeout
//
// The registrar never waits for the host: an event that finds the channel
// full is dropped and counted in Stats.EventsDropped.
//
// A host that already has a listener passes it as Config.Listener. The
// zero values of the other Config fields are the RFC defaults (where the
// RFC gives none, RSPLIB 3.4.4's default or this package's choice, as each
// Default* constant says); the ASAP settings are nested in Config.ASAP
// ([ASAPConfig], whose defaults are the Default* constants of this
// package), the store's bounds in Config.Handlespace.
//
// # Design
//
// The protocol logic is sans-IO: a [Core] owns the store and the
// supervision of the PEs registered here, and runs the ASAP server
// procedures on them (one file per procedure family: asap_register.go,
// asap_resolve.go, asap_supervise.go, asap_reports.go, asap_limits.go,
// asap_grace.go). It takes messages and timer expiries with an explicit
// time and returns its [Output]s and its next deadline, so that hosts and
// tests can drive it message by message:
//
//	c, err := enrp.NewCore(cfg)
//	c.HandleAccepted(now, 1, info)
//	c.HandleASAP(now, 1, data) // one ASAP message (PPID 11)
//	for _, o := range c.Outbox() { ... } // SendASAP, Multicast, CloseAssoc, PEEvent
//	next := c.NextDeadline()   // then c.HandleTimeout(next)
//
// Registrar.Run is the Core's driver, on the same loop as the asap PE and
// PU drivers: one goroutine that owns the core, fed by a reader and a
// writer goroutine per association and an accept goroutine, all of which
// end when Run returns. Slow associations are aborted (RFC 9260 §9.1) rather than
// allowed to stall the loop (Config.SendQueue); the loop never waits for a
// peer, and Close returns within one shutdown bound of the transport
// however many peers hang (see Registrar.Run).
//
// # Peering (ENRP)
//
// Registrars keep one another's handlespaces in sync with ENRP (RFC 5353
// §3) when Config.Peers names peers (Peers.Static, their ENRP addresses)
// or an ENRP multicast group to find them on (Peers.Announcer). ENRP runs
// over SCTP with PPID 12, on the ASAP listener (routed by PPID) or on a
// listener of its own (Peers.Listener). What works:
//
//   - ENRP_PRESENCE every PEER-HEARTBEAT-CYCLE with the ownership checksum
//     and Server Information, answered when it asks for a reply (R);
//     a peer silent for MAX-TIME-LAST-HEARD is probed and, without an
//     answer within MAX-TIME-NO-RESPONSE, presumed dead (§3.2-3.3);
//     messages with our own server ID are ignored, unknown ones answered
//     with ENRP_ERROR;
//   - start-up with a mentor (§3.4): registrations are refused (Lack of
//     Resources) until the mentor's peer list and handle table arrived or
//     Peers.MentorTimeout passed with no peer heard; LIST_REQUEST and
//     LIST_RESPONSE; HANDLE_TABLE_REQUEST and RESPONSE with the W, M and R
//     flags, paged (Peers.PageSize, 128 as RSPLIB 3.4.4) with a cursor
//     per requester (§3.5);
//   - ENRP_HANDLE_UPDATE (ADD_PE, DEL_PE) to every peer for every change
//     to a PE this registrar owns; received updates are applied with the
//     policy consistency rules, only for PEs whose home is the sender, up
//     to Peers.MaxPEsPerPeer; a peer's PEs do not expire here while the
//     peer lives (§3.6);
//   - the checksum audit: a Presence whose checksum differs from ours for
//     that peer starts a W=1 table request with mark and sweep of its PEs
//     (§3.7);
//   - takeover of a peer presumed dead (§3.9): ENRP_INIT_TAKEOVER to every
//     peer, the acknowledgements, the tie-break (the lower server ID wins,
//     as RSPLIB 3.4.4 decides it), TAKEOVER-EXPIRY, ENRP_TAKEOVER_SERVER,
//     and an ASAP_ENDPOINT_KEEP_ALIVE with the H bit to each PE taken
//     over; a Presence from the target cancels it.
//
// Peer events (up, down, takeover started and done, taken over) reach the
// host on Config.Events with the PE events; Registrar.Peers lists the peer
// table and Stats.ENRP counts the ENRP procedures. The timers default to
// the RFC 5353 §7 values where the RFC gives one, RSPLIB 3.4.4's where it
// does not; the doc of each PeersConfig field says which.
//
// # Security
//
// RFC 5355 lists the threats to RSerPool; RFC 5352 §6 and RFC 5353 §6
// answer them with transport security, which authenticates every ASAP and
// ENRP association, and with authorization by the registrar. The first is
// the transport's (a transport.Conn that implements
// transport.PeerIdentifier, as SCTP over DTLS does; memnet gives test
// identities with memnet.Node.SetIdentity); this package does the second.
//
// The Registrar copies each association's verified peer identity
// (transport.PeerIdentityOf) into the [AssocInfo] it hands the core, for
// the associations it accepts (ASAP listener, ENRP listener) and those it
// dials (peers, PEs taken over): AssocInfo.Identity and
// AssocInfo.Authenticated. A host that drives the [Core] itself passes
// them to HandleAccepted and HandleConnected. Three hooks see them:
//
//   - ASAPConfig.Authorize, for every registration (RFC 5352 §3.2): a
//     refusal is a Registration Response with R=1 and Rejected due to
//     security considerations (0xa, RFC 5354 §3.12), and changes nothing;
//     asap.PoolElement.Register fails with a final *asap.RejectError;
//   - ASAPConfig.AuthorizeResolution, for every handle resolution (RFC
//     5352 §3.5): a refusal is a Handle Resolution Response with an
//     Operation Error 0xa and no PEs, counted in
//     ASAPStats.ResolutionsRefused; asap.PoolUser's Resolve, Select and
//     Dial fail at once with an *asap.RejectError of code 0xa, without
//     retrying. Nil (the default) costs resolution nothing;
//   - PeersConfig.Accept, for every registrar that would peer (RFC 5353
//     §6), asked again when an association that has not introduced
//     itself speaks in a known peer's name: a refused registrar never
//     enters the peer table and its handle updates are never applied.
//
// [NamePolicy] is the common case, by name: per pool, the identity
// patterns ([MatchIdentity]: path.Match globs on Identity.Name and the
// leaf certificate's DNS SANs) that may register ([PoolACL] Register) and
// resolve (Resolve), and the patterns of the registrars that may peer
// ([PeerMatcher]). Where a rule applies, an unauthenticated association
// is refused; a pool without a rule is open, or closed with
// PoolACL.Closed:
//
//	p := enrp.NamePolicy{
//		Register: enrp.PoolACL{Pools: map[string][]string{"echo": {"*.pe.example.org"}}},
//		Resolve:  enrp.PoolACL{Pools: map[string][]string{"echo": {"*.pu.example.org"}}},
//		Peers:    []string{"*.reg.example.org"},
//	}
//	if err := p.Apply(&cfg); err != nil { ... } // a malformed pattern is ErrInvalidConfig
//
// What is protected, with an authenticating transport and these hooks:
// who registers PEs in a pool (pool hijacking by a rogue PE), who
// resolves it (handlespace scanning), and which registrars peer and speak
// for which server ID (a rogue ENRP server injecting handle updates or
// takeovers). With an encrypting transport, ASAP and ENRP are safe from
// eavesdropping, tampering and replay too. Independently of identities,
// the resource limits and defences of [ASAPConfig] bound what one
// association may do, and a PE's other messages (deregistration,
// keep-alive acknowledgement) act only on the PEs registered over the same
// association.
//
// What is not:
//
//   - Announces: ASAP_SERVER_ANNOUNCE and ENRP_PRESENCE by multicast carry
//     no authentication. A spoofed one makes a PE, a PU or a registrar
//     dial the address it names. With transport security a peer outside
//     the trusted CA fails the handshake, and a registrar's peer hook
//     judges the verified identity of another registrar. A PE or PU
//     judges its registrar's identity only with asap
//     PEConfig.AuthorizeRegistrar and PUConfig.AuthorizeRegistrar (for
//     example asap.RegistrarNames): the handshake alone accepts any
//     certificate of the pool's CA, every PE's included, as a registrar.
//     With DTLS and AuthorizeRegistrar, a spoofed announce costs a failed
//     handshake or a refused association; it can still waste them. On
//     hostile networks configure static registrar lists (asap
//     PEConfig.Registrars, PUConfig.Registrars) and peers (Peers.Static,
//     with Peers.StaticOnly or Accept), and no Announcer.
//   - Endpoint Unreachable reports are not authorised by identity: any
//     association may report a PE, bounded by MAX-BAD-PE-REPORT per
//     association, ASAPConfig.MaxEURate, and the keep-alive check a PE
//     must fail before it is removed.
//   - Without hooks (the default) the registrar is RFC 5352 without
//     security: any association registers in and resolves any pool, and
//     with Accept nil any association may speak for any registrar,
//     including a known peer by its server ID. Over a transport that does
//     not authenticate (plain SCTP, memnet without identities) every
//     association is unauthenticated, and a NamePolicy rule refuses it.
//   - The identity of the registrar itself is checked by the PEs and PUs,
//     not by this package: their transports verify its chain (their
//     trusted roots), which any PE's certificate of the same CA passes,
//     and their AuthorizeRegistrar hooks (asap.RegistrarNames) its name.
//     Without the hooks, give registrars a CA (or intermediate) of their
//     own as the PEs' and PUs' RootCAs.
//
// # Limitations
//
// Without transport security (RFC 5353 §6), run registrars on trusted
// networks, and name peers statically (Peers.Static with
// Peers.StaticOnly, or Peers.Accept) where others could join. Over SCTP
// in user space the association shows one peer address, so a multi-homed
// PE registers only the address it registers from.
package enrp
