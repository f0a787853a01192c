package status

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
)

// The helpers below turn wire values into what a person reads. They are
// kept here, apart from any String or MarshalText methods of the value
// types, so that the page's format is this package's own.

// hexID formats a PE identifier or ENRP server identifier (RFC 5353 §3.1).
func hexID(id uint32) string { return fmt.Sprintf("0x%08x", id) }

// handleText returns a pool handle as text when it is printable UTF-8,
// else as 0x followed by its bytes in hex (RFC 5354 §3.9: a pool handle is
// an opaque byte string).
func handleText(h []byte) string {
	if len(h) > 0 && utf8.Valid(h) {
		printable := true
		for _, r := range string(h) {
			if !unicode.IsPrint(r) {
				printable = false
				break
			}
		}
		if printable {
			return string(h)
		}
	}
	return "0x" + hexString(h)
}

// hexString is b in hex, without a prefix.
func hexString(b []byte) string { return hex.EncodeToString(b) }

// policyName names a pool member selection policy (RFC 5356 §4-§5).
func policyName(t policy.Type) string {
	if t.Known() {
		return t.String()
	}
	return fmt.Sprintf("unknown policy 0x%08x", uint32(t))
}

// protocolName names a user transport parameter type (RFC 5354 §3).
func protocolName(t tlv.ParamType) string {
	switch t {
	case tlv.ParamSCTPTransport:
		return "SCTP"
	case tlv.ParamTCPTransport:
		return "TCP"
	case tlv.ParamUDPTransport:
		return "UDP"
	case tlv.ParamUDPLiteTransport:
		return "UDP-Lite"
	case tlv.ParamDCCPTransport:
		return "DCCP"
	case 0:
		return ""
	}
	return fmt.Sprintf("0x%04x", uint16(t))
}

// useName names a Transport Use (RFC 5354 §3; SCTP and TCP only).
func useName(t tlv.ParamType, u tlv.TransportUse) string {
	if t != tlv.ParamSCTPTransport && t != tlv.ParamTCPTransport {
		return ""
	}
	switch u {
	case tlv.TransportUseDataOnly:
		return "data only"
	case tlv.TransportUseDataPlusControl:
		return "data and control"
	}
	return fmt.Sprintf("use 0x%04x", uint16(u))
}

// fraction turns a Load, Load Degradation or DPF field, a fraction of
// 0xffffffff (RFC 5356), into a number from 0 to 1.
func fraction(v uint32) float64 { return float64(v) / policy.MaxLoad }

// percent formats a fraction from 0 to 1 as a percentage.
func percent(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + " %" }

// transportOf describes a transport parameter; nil for an absent one.
func transportOf(t tlv.Transport) *Transport {
	if t.IsZero() {
		return nil
	}
	out := &Transport{Protocol: protocolName(t.Type), Use: useName(t.Type, t.Use), Addrs: []string{}}
	for _, a := range t.Addrs {
		out.Addrs = append(out.Addrs, netip.AddrPortFrom(a, t.Port).String())
	}
	return out
}

// policyOf describes a PE's policy parameter: its name, and its fields by
// name, the fractions as numbers from 0 to 1 (RFC 5356 §4-§5). An
// undecodable parameter is named with its type code and has no values.
func policyOf(p tlv.Policy) (name string, values map[string]float64, load *float64) {
	t, v, err := policy.Decode(p)
	if err != nil {
		return policyName(t), nil, nil
	}
	values = map[string]float64{}
	for _, f := range t.Fields() {
		switch f {
		case policy.FieldWeight:
			values["weight"] = float64(v.Weight)
		case policy.FieldPriority:
			values["priority"] = float64(v.Priority)
		case policy.FieldLoad:
			l := fraction(v.Load)
			values["load"], load = l, &l
		case policy.FieldLoadDegradation:
			values["load_degradation"] = fraction(v.LoadDegradation)
		case policy.FieldLoadDPF:
			values["load_dpf"] = fraction(v.LoadDPF)
		case policy.FieldWeightDPF:
			values["weight_dpf"] = fraction(v.WeightDPF)
		case policy.FieldDistance:
			values["distance_ms"] = float64(v.Distance)
		}
	}
	return policyName(t), values, load
}

// valueText formats one of policyOf's values for the page.
func valueText(name string, v float64) string {
	switch name {
	case "load", "load_degradation", "load_dpf", "weight_dpf":
		return percent(v)
	case "distance_ms":
		return (time.Duration(v) * time.Millisecond).String()
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// valueLabel names one of policyOf's values for the page.
func valueLabel(name string) string {
	switch name {
	case "weight":
		return "weight"
	case "priority":
		return "priority"
	case "load":
		return "load"
	case "load_degradation":
		return "load degradation"
	case "load_dpf":
		return "load DPF"
	case "weight_dpf":
		return "weight DPF"
	case "distance_ms":
		return "distance"
	}
	return name
}

// ago formats a span of seconds for the page, to the second (to the
// millisecond below one second).
func ago(s float64) string {
	d := time.Duration(s * float64(time.Second))
	if d < time.Second && d > -time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
