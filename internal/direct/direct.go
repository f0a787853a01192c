// Package direct holds the optional fast paths between this module's
// transports (memnet, sctp) and the driver loop (internal/loop): sending
// without a writer goroutine when a send needs no waiting, and handing
// received messages to the loop's queue without a reader goroutine when
// the queue has room. A transport.Conn that offers neither works as
// before, through Recv and Send on the Link's goroutines; these
// interfaces only remove goroutine hand-overs.
package direct

import "github.com/go-rserpool/rserpool/transport"

// Sender is a Conn that can tell a send that needs no waiting from one
// that does.
type Sender interface {
	// TrySend sends m as Send would if that needs no waiting: it returns
	// true with the error Send would have returned, or false and nil,
	// having sent nothing, when Send would have to wait (a full send
	// buffer). It never blocks beyond the transport's short internal
	// locks, so a loop may call it. m.Data is not kept after it returns.
	TrySend(m transport.Message) (sent bool, err error)
}

// Cheap is a Sender whose TrySend costs its caller about what handing the
// message to another goroutine would (memnet's does). A loop that has
// work waiting hands sends over to a writer goroutine, so that they run
// beside it, unless they are Cheap.
type Cheap interface {
	Sender
	CheapSend()
}

// Pusher is a Conn that can offer each received message to a function
// before queueing it for Recv.
//
// Once SetPush installs f, every message received is first offered to f,
// unless a message received earlier is still waiting for Recv or for the
// caller of Recv to hand it on (see Resume): order within the association
// is kept. f returns false to refuse (a full queue); the message then
// waits for Recv as without f. f is called with the transport's own locks
// held, so it must not block nor call the Conn. Recv keeps reporting the
// end of the association, after every message received before it was
// either offered to f or returned by Recv.
type Pusher interface {
	SetPush(f func(transport.Message) bool)
	// Resume tells the Conn that a message Recv returned has been handed
	// on; once every such message has been, f is offered messages again.
	// A caller of Recv on a Conn with f installed calls Resume after
	// each message it handles. Messages Recv returned before SetPush
	// count too: read nothing from a Conn before installing f, or f is
	// never offered anything (order holds either way).
	Resume()
}
