package crashhost_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/internal/crashhost"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// TestCrash: the associations a host dialled and accepted are aborted by
// its crash (the peers see them lost, not shut down), and afterwards it
// dials nothing and aborts what its listener accepts.
func TestCrash(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	n := memnet.New(1)
	defer n.Close()
	peer, hostNode := n.NewNode(), n.NewNode()
	host := crashhost.New(hostNode)
	if host.Kind() != transport.KindMem {
		t.Errorf("Kind = %v, want the wrapped node's %v", host.Kind(), transport.KindMem)
	}

	peerLn, err := peer.Listen(peer.Addr(7000))
	if err != nil {
		t.Fatal(err)
	}
	defer peerLn.Close()
	hostLn, err := host.Listen(hostNode.Addr(7000))
	if err != nil {
		t.Fatal(err)
	}
	defer hostLn.Close()

	// One association the host dialled, one it accepted.
	if _, err := host.Dial(ctx, peerLn.Addr()); err != nil {
		t.Fatal(err)
	}
	dialled, err := peerLn.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	accepted, err := peer.Dial(ctx, hostLn.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hostLn.Accept(ctx); err != nil {
		t.Fatal(err)
	}

	host.Crash()
	for name, c := range map[string]transport.Conn{"dialled": dialled, "accepted": accepted} {
		if _, err := c.Recv(ctx); !errors.Is(err, transport.ErrAssociationLost) {
			t.Errorf("%s association after the crash: Recv = %v, want ErrAssociationLost", name, err)
		}
	}
	if _, err := host.Dial(ctx, peerLn.Addr()); !errors.Is(err, crashhost.ErrCrashed) {
		t.Errorf("Dial after the crash = %v, want ErrCrashed", err)
	}

	// The listener still binds the port, but what it accepts is aborted
	// (Accept goes on waiting).
	late, err := peer.Dial(ctx, hostLn.Addr())
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithCancel(ctx)
	accepted2 := make(chan error, 1)
	go func() { _, err := hostLn.Accept(actx); accepted2 <- err }()
	if _, err := late.Recv(ctx); !errors.Is(err, transport.ErrAssociationLost) {
		t.Errorf("association to the crashed host: Recv = %v, want ErrAssociationLost", err)
	}
	acancel()
	if err := <-accepted2; !errors.Is(err, context.Canceled) {
		t.Errorf("Accept on the crashed host returned %v, want it to wait until cancelled", err)
	}
	host.Crash() // again: nothing more to do
}
