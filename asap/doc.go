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
// # Timers
//
// The RFC 5352 §5 timers and thresholds are in [Timers]; zero fields take
// the Default* constants. The values follow the project's RFC digest and
// are configurable because they could not all be checked against the RFC
// text; notably DefaultT5ServerHunt (120 ms) may be 120 s in the RFC.
//
// # Addresses
//
// See [TransportParam] and [AddrOf] for how transport.Addr maps to RFC
// 5354 transport parameters: SCTP transport parameters on the wire, the
// SCTP flavour (kernel, over UDP, memnet) chosen by local configuration.
//
// # Limitations
//
// Cookies and business cards (RFC 5352 §3.9-3.11) are not handled yet. A
// PE accepts Endpoint Keep Alives only on associations its driver gives
// the core (the home association, and ones registered with
// HandleAccepted); the PoolElement driver does not listen for registrars.
package asap
