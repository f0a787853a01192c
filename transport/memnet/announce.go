package memnet

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/go-rserpool/rserpool/transport"
)

// JoinGroup returns an Announcer for nd on the multicast group (an address
// and port; any address works in memnet, by convention an IPv4 or IPv6
// multicast address such as 239.0.0.50:3863). Send delivers a copy to every
// other Announcer that joined the same group, on any node, subject to the
// links' loss, delay and jitter; a partition drops it. An Announcer does
// not receive its own datagrams. Recv reports the sender as the sending
// node's IP with the group's port. An Announcer holds at most 1024
// datagrams that nobody received; further ones are dropped.
func (n *Network) JoinGroup(nd *Node, group netip.AddrPort) (transport.Announcer, error) {
	if !group.IsValid() {
		return nil, fmt.Errorf("memnet: join group %v: invalid group", group)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, fmt.Errorf("memnet: join group %v: %w", group, transport.ErrClosed)
	}
	a := &announcer{n: n, nd: nd, group: group, notify: make(chan struct{}, 1), done: make(chan struct{})}
	n.groups[group] = append(n.groups[group], a)
	return a, nil
}

type announcer struct {
	n      *Network
	nd     *Node
	group  netip.AddrPort
	notify chan struct{}
	done   chan struct{}
	closed bool       // guarded by n.mu
	inbox  []datagram // guarded by n.mu
}

type datagram struct {
	b    []byte
	from transport.Addr
}

func (a *announcer) Send(ctx context.Context, b []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(b) > transport.MaxMessageSize {
		return fmt.Errorf("memnet: announce %d bytes: %w", len(b), transport.ErrMessageTooLarge)
	}
	n := a.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if a.closed {
		return fmt.Errorf("memnet: announce to %v: %w", a.group, transport.ErrClosed)
	}
	from := transport.Addr{Kind: transport.KindMem, AddrPort: netip.AddrPortFrom(a.nd.ip, a.group.Port())}
	now := n.nowLocked()
	for _, m := range n.groups[a.group] {
		if m == a {
			continue
		}
		te := TraceEvent{Kind: TraceDrop, From: from, To: transport.Addr{Kind: transport.KindMem, AddrPort: netip.AddrPortFrom(m.nd.ip, a.group.Port())}, Announce: true, Len: len(b)}
		link := n.linkLocked(a.nd, m.nd)
		if n.cutLocked(a.nd, m.nd) || (link.Loss > 0 && n.rng.Float64() < link.Loss) {
			n.traceLocked(te)
			continue
		}
		ev := &event{at: now.Add(link.Delay + n.jitterLocked(link)), kind: evDatagram, dst: m, src: from, srcNode: a.nd, data: append([]byte(nil), b...)}
		if !n.cfg.step && !ev.at.After(now) {
			n.deliverDatagramLocked(ev)
			continue
		}
		n.pushLocked(ev)
	}
	return nil
}

func (n *Network) deliverDatagramLocked(ev *event) {
	m := ev.dst
	te := TraceEvent{Kind: TraceDrop, From: ev.src, To: transport.Addr{Kind: transport.KindMem, AddrPort: netip.AddrPortFrom(m.nd.ip, m.group.Port())}, Announce: true, Len: len(ev.data)}
	if !m.closed && !n.cutLocked(ev.srcNode, m.nd) && len(m.inbox) < announceQueue {
		te.Kind = TraceDeliver
		m.inbox = append(m.inbox, datagram{b: ev.data, from: ev.src})
		signal(m.notify)
	}
	n.traceLocked(te)
}

func (a *announcer) Recv(ctx context.Context) ([]byte, transport.Addr, error) {
	n := a.n
	for {
		n.mu.Lock()
		if a.closed {
			n.mu.Unlock()
			return nil, transport.Addr{}, fmt.Errorf("memnet: announce recv on %v: %w", a.group, transport.ErrClosed)
		}
		if len(a.inbox) > 0 {
			d := a.inbox[0]
			a.inbox[0] = datagram{}
			a.inbox = a.inbox[1:]
			if len(a.inbox) > 0 {
				signal(a.notify)
			}
			n.mu.Unlock()
			return d.b, d.from, nil
		}
		n.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return nil, transport.Addr{}, err
		}
		select {
		case <-a.notify:
		case <-a.done:
		case <-ctx.Done():
		}
	}
}

func (a *announcer) Close() error {
	n := a.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closeLocked()
	members := n.groups[a.group]
	for i, m := range members {
		if m == a {
			n.groups[a.group] = append(members[:i:i], members[i+1:]...)
			break
		}
	}
	return nil
}

func (a *announcer) closeLocked() {
	if !a.closed {
		a.closed = true
		a.inbox = nil
		close(a.done)
	}
}
