package spd

import (
	"net/netip"
	"testing"

	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/sad"
)

// byteReader hands out the fuzz input a byte at a time, then zeros.
type byteReader struct {
	b []byte
}

func (r *byteReader) next() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *byteReader) u16() uint16 { return uint16(r.next())<<8 | uint16(r.next()) }

// addr decodes one byte into an address of family fam from a small space
// with both edges of the family.
func (r *byteReader) addr(fam int) netip.Addr {
	c := r.next()
	switch {
	case c == 0xff && fam == 32:
		return netip.MustParseAddr("255.255.255.255")
	case c == 0xff:
		return netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
	case c == 0xfe && fam == 32:
		return netip.MustParseAddr("0.0.0.0")
	case c == 0xfe:
		return netip.MustParseAddr("::")
	case c == 0xfd && fam == 128:
		return netip.MustParseAddr("::ffff:10.0.0.1")
	}
	if fam == 32 {
		return netip.AddrFrom4([4]byte{10, c >> 6, 0, c & 0x3f})
	}
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 6: c >> 6, 15: c & 0x3f})
}

func (r *byteReader) addrRange(fam int) sad.AddrRange {
	switch r.next() % 4 {
	case 0:
		return sad.AnyAddr
	case 1:
		return sad.SingleAddr(r.addr(fam))
	case 2:
		a := r.addr(fam)
		return sad.PrefixRange(netip.PrefixFrom(a, fam-int(r.next())%(fam+1)))
	}
	a, b := r.addr(fam), r.addr(fam)
	if b.Less(a) {
		a, b = b, a
	}
	return sad.AddrRange{From: a, To: b}
}

func (r *byteReader) ports() sad.Ports {
	switch c := r.next(); c % 4 {
	case 0:
		return sad.Ports{}
	case 1:
		return sad.Opaque
	default:
		lo := uint16(c>>2) << 6 // spread over ports and type<<8|code values
		return sad.PortsRange(lo, lo+uint16(r.next()))
	}
}

var fuzzProtos = [8]uint8{sad.ProtoAny, header.ProtoTCP, header.ProtoUDP, header.ProtoICMP,
	header.ProtoICMPv6, header.ProtoMobility, header.ProtoSCTP, header.ProtoESP}

// decodePolicies turns fuzz bytes into a valid policy set, a flow and an
// index configuration, deterministically.
func decodePolicies(data []byte) ([]Policy, header.Flow, indexConfig) {
	r := &byteReader{b: data}
	cfg := indexConfig{
		linearMax:    0,
		budgetFactor: int(r.next() % 5),
		budgetSlack:  int(r.next() % 8),
		maxLevels:    int(r.next() % 4),
	}
	f := header.Flow{}
	fam := 32
	if r.next()&1 == 1 {
		fam = 128
	}
	f.Src, f.Dst = r.addr(fam), r.addr(fam)
	f.Proto = fuzzProtos[r.next()%8]
	f.SrcPort, f.DstPort, f.TypeCode = r.u16(), r.u16(), r.u16()
	f.Opaque = r.next()&1 == 1
	n := int(r.next() % 64)
	ps := make([]Policy, 0, n)
	for range n {
		c := r.next()
		p := Policy{Dir: sad.Outbound, Action: Action(c % 3)}
		if c&4 != 0 {
			p.Dir = sad.Inbound
		}
		if p.Action == Protect {
			p.SPI = 1 + uint32(c>>3)
		}
		pfam := 32
		if c&0x80 != 0 {
			pfam = 128
		}
		for range 1 + int(r.next()%3) {
			p.Selectors = append(p.Selectors, sad.Selector{
				Local:      r.addrRange(pfam),
				Remote:     r.addrRange(pfam),
				Proto:      fuzzProtos[r.next()%8],
				LocalPort:  r.ports(),
				RemotePort: r.ports(),
			})
		}
		ps = append(ps, p)
	}
	return ps, f, cfg
}

// FuzzLookup checks that the indexed lookup decides like the linear
// reference model for any policy set and flow the input decodes to.
func FuzzLookup(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3, 0, 5, 6, 1, 0, 0, 0, 80, 0, 0, 0, 8})
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, flow, cfg := decodePolicies(data)
		db := newTestDB(cfg, nil)
		if err := db.Replace(ps); err != nil {
			t.Fatalf("decoded policies rejected: %v", err)
		}
		// The decoded flow, and the same with each selector address of
		// every policy as the remote and local address, so that edges
		// are hit.
		flows := []header.Flow{flow}
		for _, p := range ps {
			for _, s := range p.Selectors {
				for _, a := range []netip.Addr{s.Remote.From, s.Remote.To, s.Local.From, s.Local.To} {
					if !a.IsValid() {
						continue
					}
					g := flow
					g.Dst = a
					if a.BitLen() != flow.Src.BitLen() {
						g.Src = a
					}
					flows = append(flows, g)
					g.Src, g.Dst = g.Dst, g.Src
					flows = append(flows, g)
				}
			}
		}
		for i := range flows {
			for _, dir := range []sad.Direction{sad.Outbound, sad.Inbound} {
				want := refDecide(ps, dir, &flows[i])
				if got := db.LookupFlow(dir, &flows[i]); got != want {
					t.Fatalf("flow %+v %v: got %+v, want %+v\n%s", flows[i], dir, got, want, dump(ps))
				}
			}
		}
	})
}
