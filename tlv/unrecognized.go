package tlv

// Unrecognized lists the skipped unknown parameters of m, nested ones
// included, whose action bits are 11 ("skip and report", RFC 5354 §2): the
// receiver must send each back in an Unrecognized Parameter error cause
// (ASAP_ERROR / ENRP_ERROR). Parameters with action 10 are skipped silently
// and not listed. The result is nil when there is nothing to report.
func Unrecognized(m Message) []RawParam {
	var out []RawParam
	add := func(u []RawParam) {
		for _, r := range u {
			if r.Type.Action() == ActionSkipReport {
				out = append(out, r)
			}
		}
	}
	tr := func(t *Transport) { add(t.Unknown) }
	pe := func(p *PoolElement) {
		add(p.Unknown)
		tr(&p.UserTransport)
		tr(&p.ASAPTransport)
	}
	pes := func(ps []PoolElement) {
		for i := range ps {
			pe(&ps[i])
		}
	}
	si := func(s *ServerInfo) {
		add(s.Unknown)
		tr(&s.Transport)
	}
	switch m := m.(type) {
	case *Registration:
		add(m.Unknown)
		pe(&m.PE)
	case *Deregistration:
		add(m.Unknown)
	case *RegistrationResponse:
		add(m.Unknown)
	case *DeregistrationResponse:
		add(m.Unknown)
	case *HandleResolution:
		add(m.Unknown)
	case *HandleResolutionResponse:
		add(m.Unknown)
		pes(m.PEs)
	case *EndpointKeepAlive:
		add(m.Unknown)
	case *EndpointKeepAliveAck:
		add(m.Unknown)
	case *EndpointUnreachable:
		add(m.Unknown)
	case *ServerAnnounce:
		add(m.Unknown)
		for i := range m.Transports {
			tr(&m.Transports[i])
		}
	case *CookieMessage:
		add(m.Unknown)
	case *CookieEcho:
		add(m.Unknown)
	case *BusinessCard:
		add(m.Unknown)
		pes(m.PEs)
	case *ASAPError:
		add(m.Unknown)
	case *Presence:
		add(m.Unknown)
		if m.Info != nil {
			si(m.Info)
		}
	case *HandleTableRequest:
		add(m.Unknown)
	case *HandleTableResponse:
		add(m.Unknown)
		for i := range m.Pools {
			pes(m.Pools[i].PEs)
		}
	case *HandleUpdate:
		add(m.Unknown)
		pe(&m.PE)
	case *ListRequest:
		add(m.Unknown)
	case *ListResponse:
		add(m.Unknown)
		for i := range m.Servers {
			si(&m.Servers[i])
		}
	case *InitTakeover:
		add(m.Unknown)
	case *InitTakeoverAck:
		add(m.Unknown)
	case *TakeoverServer:
		add(m.Unknown)
	case *ENRPError:
		add(m.Unknown)
	}
	return out
}

// UnrecognizedError builds the Operation Error that reports the parameters
// Unrecognized returned: one Unrecognized Parameter cause per parameter,
// carrying its TLV (RFC 5354 §3.12). It returns nil for an empty list.
func UnrecognizedError(params []RawParam) *OperationError {
	if len(params) == 0 {
		return nil
	}
	e := &OperationError{Causes: make([]Cause, len(params))}
	for i, r := range params {
		e.Causes[i] = Cause{Code: CauseUnrecognizedParameter, Info: r.Bytes()}
	}
	return e
}
