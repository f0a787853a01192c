package tlv

import (
	"testing"
)

type benchCase struct {
	name  string
	m     Message
	parse func([]byte) error
}

func benchCases() []benchCase {
	asap := func(b []byte) error { _, err := ParseASAP(b); return err }
	enrp := func(b []byte) error { _, err := ParseENRP(b); return err }
	return []benchCase{
		{"Registration", registration(), asap},
		{"HandleResolution", &HandleResolution{PoolHandle: PoolHandle("EchoPool"), HasItems: true, Items: 3}, asap},
		{"HandleResolutionResponse/pes=1", hrr(1), asap},
		{"HandleResolutionResponse/pes=16", hrr(16), asap},
		{"HandleResolutionResponse/pes=128", hrr(128), asap},
		{"EndpointKeepAlive", &EndpointKeepAlive{Home: true, ServerID: 0x55, PoolHandle: PoolHandle("EchoPool")}, asap},
		{"HandleUpdate", &HandleUpdate{ENRPHeader: ENRPHeader{SenderID: 1, ReceiverID: 2}, PoolHandle: PoolHandle("EchoPool"), PE: benchPE(1, true)}, enrp},
		{"HandleTableResponse/pes=128", tableResponse(128), enrp},
	}
}

func BenchmarkAppend(b *testing.B) {
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 0, c.m.Len())
			b.ReportAllocs()
			b.SetBytes(int64(c.m.Len()))
			for b.Loop() {
				buf = c.m.AppendTo(buf[:0])
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			wire := c.m.AppendTo(nil)
			b.ReportAllocs()
			b.SetBytes(int64(len(wire)))
			for b.Loop() {
				if err := c.parse(wire); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
