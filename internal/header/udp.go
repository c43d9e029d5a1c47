package header

import "encoding/binary"

// UDP header layout (RFC 768).
const UDPHeaderLen = 8

// UDP is a view over a UDP header and payload. Valid when len >= UDPHeaderLen.
type UDP []byte

func (b UDP) IsValid() bool        { return len(b) >= UDPHeaderLen }
func (b UDP) SrcPort() uint16      { return binary.BigEndian.Uint16(b) }
func (b UDP) DstPort() uint16      { return binary.BigEndian.Uint16(b[2:]) }
func (b UDP) Length() int          { return int(binary.BigEndian.Uint16(b[4:])) }
func (b UDP) Checksum() uint16     { return binary.BigEndian.Uint16(b[6:]) }
func (b UDP) SetSrcPort(p uint16)  { binary.BigEndian.PutUint16(b, p) }
func (b UDP) SetDstPort(p uint16)  { binary.BigEndian.PutUint16(b[2:], p) }
func (b UDP) SetLength(n int)      { binary.BigEndian.PutUint16(b[4:], uint16(n)) }
func (b UDP) SetChecksum(c uint16) { binary.BigEndian.PutUint16(b[6:], c) }
