package tlv

// EncodedResolutionResponse is an ASAP_HANDLE_RESOLUTION_RESPONSE (RFC 5352
// §2.2.6) whose Pool Elements are already in wire form, as a registrar that
// keeps each PE's encoding copies them in: AppendTo writes the same bytes as
// HandleResolutionResponse with the same fields would. Each of PEs must be
// one whole Pool Element parameter (RFC 5354 §3.7) with its padding, such
// as PoolElement.AppendTo writes; they are copied, not checked.
type EncodedResolutionResponse struct {
	PoolHandle PoolHandle
	Policy     *Policy // the pool's overall policy, optional
	PEs        [][]byte
}

// ASAPType implements ASAPMessage.
func (m *EncodedResolutionResponse) ASAPType() ASAPType { return ASAPHandleResolutionResponse }

// Len implements Message.
func (m *EncodedResolutionResponse) Len() int {
	n := HeaderLen + m.PoolHandle.Len() + policyLen(m.Policy)
	for _, pe := range m.PEs {
		n += len(pe)
	}
	return n
}

// AppendTo implements Message: Pool Handle, Pool Member Selection Policy
// (when set), the Pool Elements.
func (m *EncodedResolutionResponse) AppendTo(b []byte) []byte {
	b, start := beginMsg(b, uint8(ASAPHandleResolutionResponse), 0)
	b = m.PoolHandle.AppendTo(b)
	if m.Policy != nil {
		b = m.Policy.appendTo(b)
	}
	for _, pe := range m.PEs {
		b = append(b, pe...)
	}
	return endMsg(b, start)
}
