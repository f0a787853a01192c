// Package e2e holds the end-to-end tests of go-rserpool: a registrar
// (package enrp), pool elements and pool users (package asap) and the
// echo application (internal/echo), wired together as a host program
// would, over the in-memory network (transport/memnet, inside
// testing/synctest bubbles: virtual time, no sleeps) and over user-space
// SCTP on loopback (transport/sctp).
//
// The tests check RFC 5352 procedures across the whole stack:
// registration (§3.1, §3.2), handle resolution (§3.5), endpoint keep-alive
// (§3.7), deregistration (§3.3), endpoint unreachable reports and pool
// user failover (§3.5), registrar discovery by announces (§3.6), and
// sessions with pool element failover, cookies and business cards
// (§3.9-3.11: asap.Session, asap.SessionServer, asap/cookie). They
// follow the registrar's changes through its events (enrp.Config.Events),
// which say when and why it removed a PE. They also measure and log the failover time of a pool user, with the default
// and with tuned timers.
//
// The DTLS tests (RFC 8261, SCTP over DTLS) check the defences of RFC 5355
// with certificates made in the test: a registrar of an untrusted CA is
// refused by PEs and PUs, configured or announced; a rogue PE cannot
// register, an unauthorised PU cannot resolve, a rogue registrar cannot
// peer.
//
// The package has no code of its own outside its tests.
package e2e
