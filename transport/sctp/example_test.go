package sctp_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/sctp"
)

// Listen and dial on loopback: SCTP in user space over UDP (RFC 6951),
// whole messages with their PPID and stream. Port 0 picks a free UDP port;
// a registrar would listen on sctp.DefaultPort (9899).
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := sctp.New(sctp.Config{}) // the zero Config works

	l, err := tr.Listen(transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()
	fmt.Println("listening on", l.Addr().Kind, l.Addr().AddrPort.Addr())

	type result struct {
		m   transport.Message
		err error
	}
	got := make(chan result, 1)
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := l.Accept(ctx)
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		m, err := c.Recv(ctx)
		if err == nil {
			err = c.Send(ctx, transport.Message{PPID: m.PPID, Stream: m.Stream, Data: []byte("pong")})
		}
		got <- result{m, err}
	}()

	c, err := tr.Dial(ctx, l.Addr())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() {
		c.Close() // graceful SHUTDOWN (RFC 9260 §9.2)
		<-served  // the listener's side has closed too
	}()
	if err := c.Send(ctx, transport.Message{PPID: transport.PPIDASAP, Stream: 1, Data: []byte("ping")}); err != nil {
		fmt.Println(err)
		return
	}
	r := <-got
	if r.err != nil {
		fmt.Println(r.err)
		return
	}
	fmt.Printf("listener got %q, PPID %d, stream %d\n", r.m.Data, r.m.PPID, r.m.Stream)
	reply, err := c.Recv(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("dialer got %q\n", reply.Data)
	// Output:
	// listening on sctp-udp 127.0.0.1
	// listener got "ping", PPID 11, stream 1
	// dialer got "pong"
}

// Turn security on: every association of the Transport then runs over
// DTLS (RFC 8261), and both ends verify each other's certificate against
// the pool operator's CA. The same three lines serve a registrar, a pool
// element and a pool user; the authorization above reads the verified peer
// with transport.PeerIdentityOf.
func ExampleDTLSConfig() {
	cert, err := tls.LoadX509KeyPair("registrar.pem", "registrar-key.pem")
	if err != nil {
		fmt.Println(err)
		return
	}
	caPEM, err := os.ReadFile("pool-ca.pem")
	if err != nil {
		fmt.Println(err)
		return
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)

	tr := sctp.New(sctp.Config{DTLS: &sctp.DTLSConfig{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool, // verifies listeners we dial and, by default, peers we accept
	}})
	l, err := tr.Listen(transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("0.0.0.0:9899")})
	if err != nil {
		fmt.Println(err) // a bad certificate shows here, as sctp.ErrDTLSConfig
		return
	}
	defer l.Close()
	c, err := l.Accept(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	if id, ok := transport.PeerIdentityOf(c); ok {
		fmt.Println("peer", id.Name) // the first DNS SAN of its verified certificate
	}
}
