package enrp

import (
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// AssocID names one association of the registrar: an ASAP association of
// a pool element or pool user, or (with ENRP) an association to a peer
// registrar. The host picks the IDs of the associations it reports as
// accepted, the core those it asks for (ConnectPeer); 0 means "none".
type AssocID uint64

// AssocInfo describes an association of the registrar: one a pool
// element or pool user opened, or one to or from a peer registrar. It is
// handed to the authorization hooks (ASAPConfig.Authorize,
// ASAPConfig.AuthorizeResolution, PeersConfig.Accept).
type AssocInfo struct {
	Local  transport.Addr // the registrar's end
	Remote transport.Addr // the peer's end
	// Identity is the peer's identity as the transport verified it
	// (transport.PeerIdentityOf; RFC 5355 §4, RFC 5352 §6, RFC 5353 §6),
	// and Authenticated says whether there is one. The Registrar fills
	// both for the associations it accepts and dials; over a transport
	// that does not authenticate its peers (plain SCTP, memnet without
	// identities) Authenticated is false and Identity zero. Treat
	// Identity as read-only: it may be shared by several hook calls.
	Identity      transport.Identity
	Authenticated bool
}

// assocInfo returns the AssocInfo of c: its addresses and its peer's
// verified identity.
func assocInfo(c transport.Conn) AssocInfo {
	id, ok := transport.PeerIdentityOf(c)
	return AssocInfo{Local: c.LocalAddr(), Remote: c.RemoteAddr(), Identity: id, Authenticated: ok}
}

// Output is one thing the [Core] asks its host to do or tell: [SendASAP],
// [SendENRP], [Multicast], [ConnectPeer], [CloseAssoc], or the events
// [PEEvent] and [PeerEvent].
type Output interface{ isOutput() }

// SendASAP asks the host to send an ASAP message on an association (SCTP
// PPID transport.PPIDASAP, RFC 5352 §4). The core has shortened it to fit
// the 16-bit Message Length. The host encodes it before the core's next
// call. A Handle Resolution Response that carries PEs is a
// *tlv.EncodedResolutionResponse: the core copies the encodings the store
// keeps for the selected PEs (RFC 5352 §2.2.6, without their ASAP
// transports, RFC 5354 §3.10) instead of encoding each PE again; one that
// carries an error is a *tlv.HandleResolutionResponse.
type SendASAP struct {
	Assoc AssocID
	Msg   tlv.ASAPMessage
}

// SendENRP asks the host to send an ENRP message to a peer registrar on an
// association (SCTP PPID transport.PPIDENRP, RFC 5353 §2).
type SendENRP struct {
	Assoc AssocID
	Msg   tlv.ENRPMessage
}

// Multicast asks the host to send a message to its multicast group: an
// ASAP message (the ASAP_SERVER_ANNOUNCE, RFC 5352 §3.6) on the ASAP
// announce group (Config.Announcer), an ENRP message (ENRP_PRESENCE,
// RFC 5353 §3.2, with ENRP peering) on the ENRP one.
type Multicast struct {
	Msg tlv.Message
}

// ConnectPeer asks the host to open an association to a peer registrar
// at Addr under the ID Assoc (IDs from 1<<63 up, never the host's), and
// to report the outcome with HandleConnected or HandleConnectFailed.
// PE is set when Addr is a pool element's, taken over from a dead peer
// (RFC 5353 §3.9), not a registrar's: the host dials a registrar from its
// ENRP endpoint (RFC 5353 §2.2.1: the address and port its Server
// Information names), a pool element from anywhere.
type ConnectPeer struct {
	Assoc AssocID
	Addr  transport.Addr
	PE    bool
}

// CloseAssoc asks the host to end association Assoc: at once with an SCTP
// ABORT (RFC 9260 §9.1; transport.Conn.Abort) when Abort is set, else with
// a graceful shutdown (RFC 9260 §9.2). The core has already forgotten it,
// as after HandleLost, and holds no PE on it; the host may still report
// HandleLost for it, which then does nothing.
type CloseAssoc struct {
	Assoc  AssocID
	Abort  bool
	Reason CloseReason
}

// CloseReason says why the registrar ends an association.
type CloseReason uint8

// Reasons for CloseAssoc.
const (
	CloseIdle      CloseReason = iota + 1 // no PE and no message for ASAPConfig.IdleTimeout
	CloseKeepAlive                        // its last PE failed a keep-alive (RFC 5352 §3.7)
)

// String names the reason.
func (r CloseReason) String() string {
	switch r {
	case CloseIdle:
		return "idle"
	case CloseKeepAlive:
		return "keep-alive failed"
	}
	return "unknown"
}

// PEEvent tells the host about a change to a PE this registrar owns: a
// registration stored a new PE (EventRegistered) or registered it again
// (EventUpdated), or the PE left the handlespace (EventRemoved, with its
// Reason). It is where the ENRP_HANDLE_UPDATEs to the peers come from
// (RFC 5353 §3.6: ADD_PE, DEL_PE). The store holds the PE as the change
// left it until the core's next call. PoolHandle is a copy.
type PEEvent struct {
	Kind       EventKind
	PoolHandle tlv.PoolHandle
	PEID       uint32
	Reason     RemoveReason // EventRemoved only
}

// RemoveReason says why a registrar removed a PE.
type RemoveReason uint8

// Reasons for an EventRemoved.
const (
	RemovedDeregistered     RemoveReason = iota + 1 // ASAP_DEREGISTRATION (RFC 5352 §3.4)
	RemovedExpired                                  // registration life ran out (RFC 5352 §3.2)
	RemovedKeepAliveTimeout                         // no ASAP_ENDPOINT_KEEP_ALIVE_ACK (RFC 5352 §3.7)
	RemovedAssocLost                                // its association went down (RFC 5352 §3.7)
	RemovedUnreachable                              // MAX-BAD-PE-REPORT reports (RFC 5352 §3.5)
)

var removeReasonNames = [...]string{
	RemovedDeregistered:     "deregistered",
	RemovedExpired:          "expired",
	RemovedKeepAliveTimeout: "keep-alive timeout",
	RemovedAssocLost:        "association lost",
	RemovedUnreachable:      "reported unreachable",
}

// String names the reason.
func (r RemoveReason) String() string {
	if int(r) < len(removeReasonNames) && removeReasonNames[r] != "" {
		return removeReasonNames[r]
	}
	return "unknown"
}

// PeerEvent tells the host about a peer registrar (RFC 5353 §3): it
// entered the peer table (PeerUp), was presumed dead (PeerDown, PEs: how
// many PEs it owned here), or a takeover started or ended (TakeoverStarted,
// TakeoverDone with the PEs taken over; TakenOverBy with ServerID the new
// home).
type PeerEvent struct {
	Kind     PeerEventKind
	ServerID uint32
	PEs      int
}

// PeerEventKind is the kind of a [PeerEvent].
type PeerEventKind uint8

// Kinds of PeerEvent.
const (
	PeerUp PeerEventKind = iota + 1
	PeerDown
	TakeoverStarted
	TakeoverDone
	TakenOverBy
)

var peerEventNames = [...]string{
	PeerUp:          "peer up",
	PeerDown:        "peer down",
	TakeoverStarted: "takeover started",
	TakeoverDone:    "takeover done",
	TakenOverBy:     "taken over by",
}

// String names the kind.
func (k PeerEventKind) String() string {
	if int(k) < len(peerEventNames) && peerEventNames[k] != "" {
		return peerEventNames[k]
	}
	return "unknown"
}

func (SendASAP) isOutput()    {}
func (PeerEvent) isOutput()   {}
func (SendENRP) isOutput()    {}
func (Multicast) isOutput()   {}
func (ConnectPeer) isOutput() {}
func (CloseAssoc) isOutput()  {}
func (PEEvent) isOutput()     {}
