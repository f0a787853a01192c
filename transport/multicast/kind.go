package multicast

import "github.com/go-rserpool/rserpool/transport"

// fromKind is the Kind of the source address Recv reports. transport has no
// Kind for a plain UDP endpoint yet; until it has one, the sender is
// reported as KindSCTPUDP, whose AddrPort is a UDP address too. Its port is
// the sender's UDP source port, not an SCTP listener.
const fromKind = transport.KindSCTPUDP
