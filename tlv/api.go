package tlv

// Limits bound what a parser accepts from untrusted input. They are checked
// before anything is allocated for the offending item. Zero fields take the
// defaults.
type Limits struct {
	MaxMessageSize int // bytes in one message, default DefaultMaxMessageSize
	MaxDepth       int // parameter nesting depth, default DefaultMaxDepth
	MaxPoolHandle  int // pool handle bytes, default DefaultMaxPoolHandle
	MaxParams      int // parameters (and error causes) in one message, default DefaultMaxParams
}

// Default limits.
const (
	// DefaultMaxMessageSize is the largest message the 16-bit Message
	// Length can describe.
	DefaultMaxMessageSize = 65535
	// DefaultMaxDepth allows the deepest nesting the RFCs define: message →
	// Pool Element (1) → transport (2) → address (3), plus one spare level.
	DefaultMaxDepth = 4
	// DefaultMaxPoolHandle is RSPLIB's cap; RFC 5354 sets no limit.
	DefaultMaxPoolHandle = 32
	// DefaultMaxParams bounds the parameters of one message.
	DefaultMaxParams = 4096
)
