package enrp

import (
	"context"
	"log/slog"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/handlespace"
)

// server is the sans-IO ENRP server core (RFC 5353): the one owner of the
// registrar's handlespace. Today it runs the ASAP server procedures
// (package asap, RFC 5352 §3.2-3.7) on that store; ENRP peering (Presence,
// Handle Update, Handle Table, takeover, RFC 5353 §3) plugs in beside them
// as further handle methods and outputs, fed by the same driver loop and
// consuming the asap.PEStored / asap.PERemoved events that ASAP emits for
// every change to a PE this registrar owns (the future HANDLE_UPDATEs).
//
// Like the asap cores it does no I/O and reads no clock: every call takes
// now, outputs are collected with outbox, and NextDeadline says when
// timeout must run. Outputs may alias the store and the input: the caller
// encodes them before its next call.
type server struct {
	log   *slog.Logger
	id    uint32
	store *handlespace.Store
	asap  *asap.ServerCore
}

// newServer builds the core.
func newServer(id uint32, ac asap.ServerConfig, hs handlespace.Config, log *slog.Logger) (*server, error) {
	s := &server{log: log, id: id}
	st, err := handlespace.New(hs)
	if err != nil {
		return nil, err
	}
	ac.ServerID = id
	ac.Logger = log
	core, err := asap.NewServerCore(ac, st)
	if err != nil {
		return nil, err
	}
	s.store, s.asap = st, core
	return s, nil
}

// asapAccepted: a PE or PU opened ASAP association id.
func (s *server) asapAccepted(now time.Time, id asap.AssocID, info asap.AssocInfo) {
	s.asap.HandleAccepted(now, id, info)
}

// asapData: one ASAP message (PPID 11) arrived on association id.
func (s *server) asapData(now time.Time, id asap.AssocID, b []byte) {
	s.asap.HandleData(now, id, b)
}

// asapLost: ASAP association id is gone.
func (s *server) asapLost(now time.Time, id asap.AssocID) {
	s.asap.HandleLost(now, id)
}

// timeout runs the timers due at now.
func (s *server) timeout(now time.Time) {
	s.asap.HandleTimeout(now)
}

// HandleTimeout is timeout, for internal/loop.
func (s *server) HandleTimeout(now time.Time) { s.timeout(now) }

// NextDeadline is when timeout must next run (zero: nothing scheduled).
func (s *server) NextDeadline() time.Time { return s.asap.NextDeadline() }

// outbox returns what the driver must do. The PE events are where ENRP
// handle updates to peers will be generated (RFC 5353 §3.6); alone, the
// registrar logs them and the driver hands them to the host
// (Config.Events).
func (s *server) outbox() []asap.Output {
	out := s.asap.Outbox()
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		for _, o := range out {
			switch o := o.(type) {
			case asap.PEStored:
				s.log.Debug("enrp: PE stored", "pool", o.PoolHandle.String(), "pe", o.PEID, "new", o.Created)
			case asap.PERemoved:
				s.log.Debug("enrp: PE removed", "pool", o.PoolHandle.String(), "pe", o.PEID, "reason", o.Reason.String())
			}
		}
	}
	return out
}
