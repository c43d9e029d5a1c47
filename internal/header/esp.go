package header

import "encoding/binary"

// ESP header layout (RFC 4303 §2).
const (
	ESPHeaderLen  = 8 // SPI + Sequence Number
	ESPTrailerLen = 2 // Pad Length + Next Header
)

// ESP is a view over an ESP packet starting at the SPI. Valid when
// len >= ESPHeaderLen.
type ESP []byte

func (b ESP) IsValid() bool     { return len(b) >= ESPHeaderLen }
func (b ESP) SPI() uint32       { return binary.BigEndian.Uint32(b) }
func (b ESP) Seq() uint32       { return binary.BigEndian.Uint32(b[4:]) }
func (b ESP) SetSPI(spi uint32) { binary.BigEndian.PutUint32(b, spi) }
func (b ESP) SetSeq(seq uint32) { binary.BigEndian.PutUint32(b[4:], seq) }
