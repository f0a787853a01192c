// Package asap implements the Aggregate Server Access Protocol (RFC 5352)
// roles of Reliable Server Pooling: the pool element (PE) that registers
// in a pool, and the pool user (PU) that resolves a pool handle and talks
// to a PE. Messages and parameters come from package tlv (RFC 5354);
// selection policies from package policy (RFC 5356).
//
// # Sans-IO cores
//
// [PoolElementCore] and [PoolUserCore] hold the protocol state and do no
// I/O. A driver feeds them what happened — Handle (a decoded message on an
// association), HandleConnected / HandleConnectFailed / HandleLost
// (association events), HandleAnnounce (an ASAP_SERVER_ANNOUNCE) and
// HandleTimeout — always with an explicit now, and after each call takes
// [Output] values from Outbox: [Send], [Connect], [Close], and events such
// as [Registered] or [ResolutionDone]. NextDeadline says when HandleTimeout
// is next due. Tests drive the cores message by message.
//
// # Running endpoints
//
// [NewPoolElement] and [NewPoolUser] run a core on one goroutine over a
// transport.Transport (SCTP, or transport/memnet in tests):
//
//	pe, err := asap.NewPoolElement(asap.PEConfig{
//		PoolHandle:    []byte("echo"),
//		UserTransport: ut, // asap.TransportParam(listener.Addr(), tlv.TransportUseDataOnly)
//		Registrars:    []transport.Addr{registrar},
//	}, tr)
//	err = pe.Register(ctx)
//	defer pe.Deregister(ctx)
//
//	pu, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{registrar}}, tr)
//	conn, elem, err := pu.Dial(ctx, []byte("echo")) // fails over past dead PEs
//
// A zero PEConfig.Kind or PUConfig.Kind is taken from the transport when it
// says its Kind ([transport.KindReporter]: memnet and transport/sctp do).
// A configuration with no Registrars and no announcer ([WithAnnouncer])
// fails with [ErrInvalidConfig]: such an endpoint could never find a
// registrar.
//
// # Application data and PPIDs
//
// ASAP finds a PE; what the pool user and the PE then say to each other is
// the application's. The association [PoolUser.Dial] returns, and the one
// the PE's own listener accepts, is a plain transport.Conn on which this
// package sends and reads nothing. Application messages on it carry the
// application protocol's PPID: the one IANA registered for it, or 0,
// "unspecified" (RFC 9260 §3.3.1), for a protocol without one. The echo
// protocol of the example programs (examples/echo-pe, examples/pu-client)
// uses 0. ASAP itself uses PPID 11 (transport.PPIDASAP, RFC 5352 §4), on
// every association to a registrar and, when a PE's user transport says
// "data plus control" (tlv.TransportUseDataPlusControl, RFC 5354 §3.4), for
// ASAP control messages on the PU-PE association too (cookies and business
// cards, RFC 5352 §3.9-3.11; see Sessions). A PE that advertises
// tlv.TransportUseDataOnly, as the examples do, gets only application data
// there. Use the constants of package transport (transport.PPIDASAP,
// transport.PPIDENRP) when sending and receiving; tlv.PPIDASAP and
// tlv.PPIDENRP are the same numbers for code that has only the codec.
//
// Two names occur twice. A [PoolElement] is a running pool element;
// tlv.PoolElement is the Pool Element parameter (RFC 5354 §3.10), the data
// about one PE that a registrar keeps and that [PoolUser.Resolve] and
// [PoolUser.Dial] return. transport.Transport dials and listens (the
// NewPoolElement and NewPoolUser argument); tlv.Transport is an RFC 5354
// transport parameter, the advertised address in PEConfig.UserTransport
// ([TransportParam] and [AddrOf] convert).
//
// # Sessions (enhanced mode)
//
// [PoolUser.Connect] opens a [Session] with a pool: an association to one
// PE at a time, with message-oriented [Session.Send] and [Session.Recv]
// (PPID and stream as on a transport.Conn) and a request/response helper,
// [Session.Request], that survives the loss of the PE:
//
//	s, err := pu.Connect(ctx, []byte("kv"), asap.SessionConfig{Events: events})
//	answer, err := s.Request(ctx, transport.Message{Data: []byte("get x")})
//	defer s.Close()
//
// When the PE fails — the association is lost, a send fails, a request
// gets no answer within SessionConfig.RequestTimeout (default 5 s,
// [DefaultRequestTimeout]), or the host calls [Session.Failover] (as
// RSPLIB's rsp_forcefailover) — the session aborts the association,
// reports the PE unreachable (RFC 5352 §3.5), and connects the next PE:
// the PEs of the PE's latest ASAP_BUSINESS_CARD first, in their order
// (§3.11), then the pool user's cache, then a new handle resolution, never
// one PE twice in one failover and at most MaxFailover of them. A PE that
// shuts the association down gracefully (transport.ErrPeerClosed:
// PESession.Close, or SessionServer.Close as the PE leaves) ended the
// session on purpose and is alive: the session fails over the same way
// ([ReasonPeerClosed]) but does not report it unreachable, so PEs that end
// sessions, or shut down cleanly, are never removed by their users'
// reports. On a PE
// whose user transport is "data plus control" the first message is
// ASAP_COOKIE_ECHO with the latest ASAP_COOKIE the session received (only
// the latest is kept, §3.9-3.10), so that the new PE restores the
// session's state; then the request in flight is sent again (up to
// SessionConfig.RequestRetries, default 2, [DefaultRequestRetries]). Each
// failover is a [FailoverEvent] (old PE, new PE, reason, duration) on
// SessionConfig.Events and counted in [Session.Stats]. Requests are at
// least once: make them idempotent, or let the cookie carry what a new PE
// needs to recognise a retry (a sequence number). A request that is not
// retried, and every call waiting when no PE is left, fails with a
// [*FailoverError] (errors.Is [ErrFailover]); nothing is lost silently.
// [SessionCore] is the sans-IO procedure; the Session drives it on its
// own goroutine.
//
// PEs whose user transport is TCP or UDP (data only, no control channel,
// no cookies) are reached through SessionConfig.Dial, a hook that opens
// the association its own way; [NetConn] adapts a net.Conn (length-
// prefixed frames). Re-selection and unreachable reports are the same.
//
// # Basic mode: HTTP, gRPC and other services
//
// A service with its own protocol and client (HTTP, gRPC) needs no
// session: select a PE, dial it with the service's own client, and report
// it when it fails, then select again:
//
//	for {
//		pe, err := pu.Select(ctx, []byte("web"))
//		if err != nil {
//			return err // no PE left, or no registrar
//		}
//		ut := pe.UserTransport // tlv.ParamTCPTransport for an HTTP server
//		addr := netip.AddrPortFrom(ut.Addrs[0], ut.Port).String()
//		resp, err := httpClient.Get("http://" + addr + "/path")
//		if err == nil {
//			return use(resp)
//		}
//		pu.ReportUnreachable(ctx, []byte("web"), pe.ID) // RFC 5352 §3.5
//	}
//
// For gRPC, dial addr with grpc.NewClient the same way and report the PE
// when a call fails with codes.Unavailable. The registrar removes a PE
// reported by MAX-BAD-PE-REPORT pool users; this pool user stops selecting
// it at once.
//
// # Finding a registrar, and giving up
//
// The server hunt (RFC 5352 §3.6) dials up to HuntParallel registrars per
// round. The first round lasts T5-serverhunt; each round that finds none
// doubles the next one's length up to Timers.T5ServerHuntMax (default 5 s,
// [DefaultT5ServerHuntMax]), jittered to between half and all of it; a
// registrar that answered resets it. A dial still in its handshake when its
// round ends is not closed: the next rounds try the other registrars while
// it goes on, the first association up becomes the home, and a registrar is
// never dialled twice at once. Only a dial not up within
// Timers.HuntDialLimit (default 5 s, [DefaultHuntDialLimit]) is given up,
// so a registrar that is alive but slow (loaded, or under an INIT flood) is
// found. A registrar that refuses or is absent costs one dial per round, so
// about one every 4 s once backed off; one that never answers costs one
// dial per HuntDialLimit. After MaxServerHunts failed hunts (passes over
// the whole registrar table in which every dial failed or was given up;
// [DefaultMaxServerHunts], MAX-NUMBER-SERVER-HUNT) what waits for a
// registrar fails with a [*NoRegistrarError] that lists the registrars
// tried and the last dial error: PoolElement.Register, PoolUser.Resolve,
// Select and Dial. The pool element goes on hunting in the background and
// registers when it finds a registrar; the pool user stops hunting when
// nothing waits, and its back-off carries over to the next request.
//
// # Staying registered
//
// A pool element that loses its home association is no longer registered
// (Registered reports false, a [RegistrationLost] output) and registers
// with the registrar its server hunt finds, at once. A refused
// registration is transient or final by its causes
// ([RejectError.Transient], which lists them): after a transient refusal
// (for instance Non-unique PE Identifier or Inconsistent Pooling Policy,
// while another association holds the identifier or the pool) the pool
// element sends it again after a back-off from Timers.RefusedRetry (1 s)
// doubling to Timers.RefusedRetryMax (10 s), jittered; after a final one
// (Invalid Values, Rejection due to Security, Unrecognized Parameter or
// Message) it stops. An ASAP_ERROR that only reports skipped parameters is
// no refusal. PEConfig.Events tells the host of each change ([PEEvent]:
// registered, lost, refused, no registrar, home changed) without ever
// blocking the pool element: a full channel drops the event and counts it
// (PoolElement.EventsDropped).
//
// # Serving sessions
//
// A [SessionServer] is a pool element that serves sessions (RFC 5352
// §3.9-3.11) in a few lines: [NewSessionServer] listens for pool users at
// SessionServerConfig.ListenAddr and creates a [PoolElement] whose user
// transport is that listener with Transport Use "data plus control";
// Register registers it; Accept hands over each pool user's association
// as a [PESession]; Close deregisters first (so registrars stop handing
// the PE out), then closes every session and waits for its goroutines.
//
//	srv, err := asap.NewSessionServer(asap.SessionServerConfig{
//		PE:         asap.PEConfig{PoolHandle: []byte("kv"), Registrars: regs},
//		ListenAddr: node.Addr(7000),
//	}, node)
//	defer srv.Close()
//	err = srv.Register(ctx)
//	for {
//		s, err := srv.Accept(ctx)
//		if err != nil {
//			break
//		}
//		go serve(s)
//	}
//
// On a session, ASAP control travels beside the data on PPID 11, stream 0.
// A pool user that fails over to this PE sends ASAP_COOKIE_ECHO first
// (§3.10): Accept hands the session over once its first message is there
// (or after SessionServerConfig.FirstMessageWait, per session, so a silent
// pool user delays nobody else), and PESession.CookieEcho returns the echo
// before the first Recv. A new session without a cookie sends nothing until
// its host does, so with the default FirstMessageWait (3 s) a PE whose
// protocol speaks first sees it only after 3 s: set FirstMessageWait
// negative to have every session at once, and use PESession.WaitCookieEcho.
// Sessions have no idle timeout: bound Recv with a deadline, or silent pool
// users keep their MaxSessions places. Recv and Send carry the
// application's messages (any PPID but 11) untouched; SendCookie sends an
// ASAP_COOKIE (§3.9) and SendBusinessCard an ASAP_BUSINESS_CARD (§3.11) at
// any time. Send the cookie before the answer it covers, both on stream 0:
// the pool user then holds the new state when the answer arrives, and a
// crash in between loses nothing it was told. A business card from the pool
// user (§3.11: a pool user that is also a PE) is kept
// (PESession.BusinessCard) and reported (SessionServerConfig.Events).
// Malformed or unexpected ASAP messages from a pool user are counted and
// ignored; MaxSessions bounds the sessions open at once.
//
// The pool user treats the cookie as opaque bytes it may change (RFC 5355
// §3): seal it with package asap/cookie, whose Sealer authenticates (and
// optionally encrypts) it under keys the pool's elements share, and open
// the echo before trusting it. Over an authenticating transport (SCTP over
// DTLS) [PESession.PeerIdentity] names the pool user, and
// [Session.PeerIdentity] the PE a session is on: authorise per session
// with it, and seal the pool user's name into the cookie's state and
// compare it on the echo, or a cookie captured from one pool user opens
// in another's session.
//
// # Timers
//
// The RFC 5352 §5 timers and thresholds are in [Timers]; a zero field takes
// the Default* constant named after it, and each constant says where its
// value comes from. RFC 5352 §5.1 gives T1-ENRPrequest (15 s),
// T2-registration and T3-deregistration (30 s), T4-reregistration
// (min(10 min, registration life − 20 s)), T5-serverhunt (120 ms),
// T6-serverannounce (1 s) and T7-ENRPoutdate (5 s); §5.2 gives
// MAX-REG-ATTEMPT and MAX-REQUEST-RETRANSMIT (2) and MAX-NUMBER-SERVER-HUNT
// (3, [PEConfig].MaxServerHunts and [PUConfig].MaxServerHunts). Where the
// RFC gives no value (the back-off caps, the dial limit, the registration
// life), the constant says what the value is and why. Every one of them is
// configurable.
//
// # Addresses
//
// See [TransportParam] and [AddrOf] for how transport.Addr maps to RFC
// 5354 transport parameters: SCTP transport parameters on the wire, the
// SCTP flavour (kernel, over UDP, memnet) chosen by local configuration.
//
// # Limitations
//
// Pool user sessions send no ASAP_BUSINESS_CARD of their own (a PU that is
// also a PE of its own pool, RFC 5352 §3.11) and keep no cookie beyond the
// session's life (the host keeps Session.Cookie and passes it as
// SessionConfig.Cookie to resume). A session's requests go one at a time,
// and the first application message after a request is its answer. Host
// data handed to an association that then fails may be lost, as on the
// transport; Request is the at-least-once path. A failover that found no PE
// is retried only when the host sends, requests or calls Failover again.
// The PEs of a business card are dialled as the PE names them, without
// checking them against the handlespace (RFC 5352 §3.11 gives the pool user
// no means to): a PE can point its pool users at any address, so only use
// sessions with PEs you trust, and authenticate the PE a session lands on
// ([Session.PeerIdentity], over SCTP over DTLS). A PE accepts Endpoint Keep
// Alives only on associations its driver gives the core (the home
// association, and ones registered with HandleAccepted). The PoolElement
// driver listens for registrars only when its transport is a
// transport.EndpointTransport (see PEConfig.EndpointAddr); without one a
// registrar that takes the PE over (RFC 5353 §3.9) cannot reach it, and the
// PE finds a new home by its own server hunt once it loses the old one.
package asap
