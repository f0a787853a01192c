//go:build unix

package multicast

import "syscall"

// reuseAddr sets SO_REUSEADDR so that several sockets on one host can bind
// the same group and port; each of them receives every datagram.
func reuseAddr(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// setMulticastIfAddr sets IP_MULTICAST_IF by address (struct in_addr). On
// Linux this also makes addr the source address of the datagrams sent
// (inet->mc_addr); selecting the interface by index alone would let the
// kernel pick a source from another interface, since 127.0.0.1 has host
// scope.
func setMulticastIfAddr(c syscall.RawConn, addr [4]byte) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInet4Addr(int(fd), syscall.IPPROTO_IP, syscall.IP_MULTICAST_IF, addr)
	})
	if err != nil {
		return err
	}
	return serr
}
