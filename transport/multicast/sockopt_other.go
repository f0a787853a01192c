//go:build !unix

package multicast

import "syscall"

// reuseAddr does nothing where SO_REUSEADDR is not set this way: there only
// one socket per host can bind a group and port.
func reuseAddr(network, address string, c syscall.RawConn) error { return nil }

// setMulticastIfAddr does nothing here: the interface set by index stays.
func setMulticastIfAddr(c syscall.RawConn, addr [4]byte) error { return nil }
