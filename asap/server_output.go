package asap

import "github.com/go-rserpool/rserpool/tlv"

// Outputs of a [ServerCore], besides [Send].

// SendAnnounce asks the driver to send an ASAP_SERVER_ANNOUNCE to the ASAP
// announce multicast group (RFC 5352 §3.6).
type SendAnnounce struct {
	Msg *tlv.ServerAnnounce
}

// RemoveReason says why a registrar removed a PE.
type RemoveReason uint8

// Reasons for PERemoved.
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

// PEStored tells the registrar's host (the ENRP server) that the registrar
// accepted a registration: a new PE (Created) or a re-registration. An
// ENRP server announces it to its peers with ENRP_HANDLE_UPDATE(ADD_PE)
// (RFC 5353 §3.6). PoolHandle is a copy.
type PEStored struct {
	PoolHandle tlv.PoolHandle
	PEID       uint32
	Created    bool
}

// PERemoved tells the host that a PE owned by this registrar left the
// handlespace; an ENRP server sends ENRP_HANDLE_UPDATE(DEL_PE) (RFC 5353
// §3.6). PoolHandle is a copy.
type PERemoved struct {
	PoolHandle tlv.PoolHandle
	PEID       uint32
	Reason     RemoveReason
}

func (SendAnnounce) isOutput() {}
func (PEStored) isOutput()     {}
func (PERemoved) isOutput()    {}

// AbortAssoc asks the driver to abort association Assoc at once (an SCTP
// ABORT, RFC 9260 §9.1; transport.Conn.Abort). The core has already
// forgotten it, as after HandleLost, and holds no PE on it; the driver may
// still report HandleLost for it, which then does nothing.
type AbortAssoc struct {
	Assoc  AssocID
	Reason AbortReason
}

// AbortReason says why a registrar aborts an association.
type AbortReason uint8

// Reasons for AbortAssoc.
const (
	AbortIdle      AbortReason = iota + 1 // no PE and no message for ServerConfig.IdleTimeout
	AbortKeepAlive                        // its last PE failed a keep-alive (RFC 5352 §3.7)
)

// String names the reason.
func (r AbortReason) String() string {
	switch r {
	case AbortIdle:
		return "idle"
	case AbortKeepAlive:
		return "keep-alive failed"
	}
	return "unknown"
}

func (AbortAssoc) isOutput() {}
