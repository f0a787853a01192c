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
	// DefaultMaxPoolHandle is RSPLIB 3.4.4's cap on a pool handle, 32
	// bytes; RFC 5354 §3.9 sets no limit.
	DefaultMaxPoolHandle = 32
	// DefaultMaxParams bounds the parameters of one message. The RFCs set
	// no limit; 4096 is this package's choice, a bound on the work one
	// message can cause.
	DefaultMaxParams = 4096
)
