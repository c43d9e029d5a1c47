package mip6

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// Helpers are prefixed mn so they cannot collide with other test files.

var (
	mnHA      = netip.MustParseAddr("2001:db8:100::1")
	mnHAV4    = netip.MustParseAddr("203.0.113.1")
	mnHoA     = netip.MustParseAddr("2001:db8:100::10")
	mnHoA4    = netip.MustParseAddr("192.0.2.10")
	mnHome    = netip.MustParsePrefix("2001:db8:100::/64")
	mnCoA6    = netip.MustParseAddr("2001:db8:aa::5")
	mnCoA6b   = netip.MustParseAddr("2001:db8:bb::5")
	mnCoA4    = netip.MustParseAddr("198.51.100.20")
	mnSA1SPI  = uint32(0x1001)
	mnDataSPI = uint32(0x7007)
)

// mnSAD is a fake SAQuerier: SA1 exists for HoA -> HA, MH type BU.
type mnSAD struct {
	mu    sync.Mutex
	spi   uint32
	none  bool
	calls int
}

func (s *mnSAD) OutboundSPIFor(f *header.Flow) (uint32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.none || f.Src != mnHoA || f.Dst != mnHA || f.Proto != header.ProtoMobility || f.TypeCode != uint16(MHTypeBU)<<8 {
		return 0, false
	}
	return s.spi, true
}

func (s *mnSAD) HomeAddressOf(uint32) (netip.Addr, bool) { return mnHoA, true }

// mnSent is one BU as it left the MN: the cleartext BU Inject got, and
// what AfterSeal made of the sealed packet.
type mnSent struct {
	clear []byte // `IPv6(HoA -> HA) / MH BU`
	bu    *BindingUpdate
	out   endpoint.Endpoint // dpEP: unchanged
	ok    bool
	wire  []byte // b.Bytes() after AfterSeal
	esp   []byte // the "ESP" part (SPI, seq, cleartext MH)
	// kaBefore is how many keepalives were queued (not yet drained)
	// when Inject ran: keepalives sent before this BU.
	kaBefore int
}

// mnHarness runs a MobileNode with a fake dataplane: Inject "seals" the BU
// with SA1 (SPI, a sequence number, then the MH in clear: no crypto here)
// behind the SA's `IPv6(HoA -> HA)` header and calls AfterSeal like the
// dataplane does.
type mnHarness struct {
	t      *testing.T
	mn     *MobileNode
	sad    *mnSAD
	sent   chan mnSent
	ka     chan netip.AddrPort
	events chan MNEvent
	espSeq uint32
	mu     sync.Mutex
	fail   error
}

func newMNHarness(t *testing.T, mut func(*MNConfig)) *mnHarness {
	t.Helper()
	h := &mnHarness{
		t:      t,
		sad:    &mnSAD{spi: mnSA1SPI},
		sent:   make(chan mnSent, 64),
		ka:     make(chan netip.AddrPort, 64),
		events: make(chan MNEvent, 256),
	}
	cfg := MNConfig{
		HoA: mnHoA, HomePrefix: mnHome, HA: mnHA, HAV4: mnHAV4,
		SAD:       h.sad,
		Inject:    h.inject,
		Keepalive: func(dst netip.AddrPort) error { h.ka <- dst; return nil },
		OnEvent:   func(ev MNEvent) { h.events <- ev },
	}
	if mut != nil {
		mut(&cfg)
	}
	mn, err := NewMobileNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.mn = mn
	return h
}

// mnSeal builds the packet SA spi would hand AfterSeal for the cleartext
// IPv6 packet clear: the same IPv6 header with Next Header 50, then
// SPI, seq and the payload (standing in for the ciphertext).
func mnSeal(clear []byte, spi, seq uint32) *pkt.Buf {
	ip := header.IPv6(clear)
	esp := make([]byte, 8, 8+len(clear))
	binary.BigEndian.PutUint32(esp, spi)
	binary.BigEndian.PutUint32(esp[4:], seq)
	esp = append(esp, ip.Payload()...)
	p := make([]byte, header.IPv6HeaderLen+len(esp))
	copy(p, clear[:header.IPv6HeaderLen])
	o := header.IPv6(p)
	o.SetNextHeader(header.ProtoESP)
	o.SetPayloadLen(len(esp))
	copy(p[header.IPv6HeaderLen:], esp)
	b := new(pkt.Buf)
	b.Reset()
	b.Set(p)
	return b
}

// startMNHarness is newMNHarness followed by a successful Start.
func startMNHarness(t *testing.T, mut func(*MNConfig)) *mnHarness {
	t.Helper()
	h := newMNHarness(t, mut)
	if err := h.mn.Start(); err != nil {
		h.close()
		t.Fatal(err)
	}
	return h
}

func (h *mnHarness) inject(p []byte) error {
	h.mu.Lock()
	fail := h.fail
	h.espSeq++
	seq := h.espSeq
	h.mu.Unlock()
	if fail != nil {
		return fail
	}
	ip := header.IPv6(p)
	if !ip.IsValid() || ip.NextHeader() != header.ProtoMobility {
		h.t.Errorf("Inject got a packet that is not IPv6/MH: % x", p)
		return errors.New("bad packet")
	}
	if ip.Src() != mnHoA || ip.Dst() != mnHA {
		h.t.Errorf("BU in home-address form must be HoA -> HA, got %v -> %v", ip.Src(), ip.Dst())
	}
	m, err := DecodeMH(ip.Payload(), ip.Src(), ip.Dst())
	if err != nil {
		h.t.Errorf("BU does not decode with a valid checksum: %v", err)
		return err
	}
	bu, ok := m.(*BindingUpdate)
	if !ok {
		h.t.Errorf("Inject got MH type %d, want BU", m.MHType())
		return errors.New("not a BU")
	}
	b := mnSeal(p, mnSA1SPI, seq)
	out := dpEP
	okSeal := h.mn.AfterSeal(b, mnSA1SPI, &out)
	s := mnSent{clear: append([]byte(nil), p...), bu: bu, out: out, ok: okSeal, wire: append([]byte(nil), b.Bytes()...), kaBefore: len(h.ka)}
	s.esp = s.wire[len(s.wire)-(8+len(ip.Payload())):]
	h.sent <- s
	return nil
}

// nextBU returns the next BU sent, failing if none was.
func (h *mnHarness) nextBU() mnSent {
	h.t.Helper()
	synctest.Wait()
	select {
	case s := <-h.sent:
		return s
	default:
		h.t.Fatal("no BU was sent")
		return mnSent{}
	}
}

func (h *mnHarness) noBU() {
	h.t.Helper()
	synctest.Wait()
	select {
	case s := <-h.sent:
		h.t.Fatalf("unexpected BU seq %d lifetime %d", s.bu.Seq, s.bu.Lifetime)
	default:
	}
}

// drainBUs discards the BUs sent so far and returns how many there were.
func (h *mnHarness) drainBUs() int {
	synctest.Wait()
	n := 0
	for {
		select {
		case <-h.sent:
			n++
		default:
			return n
		}
	}
}

func (h *mnHarness) drainKA() []netip.AddrPort {
	synctest.Wait()
	var out []netip.AddrPort
	for {
		select {
		case a := <-h.ka:
			out = append(out, a)
		default:
			return out
		}
	}
}

func (h *mnHarness) lastEvent(kind MNEventKind) (MNEvent, bool) {
	synctest.Wait()
	var ev MNEvent
	found := false
	for {
		select {
		case e := <-h.events:
			if e.Kind == kind {
				ev, found = e, true
			}
		default:
			return ev, found
		}
	}
}

// BA forms: how the BA reaches Deliver (RFC 6275 §6.4, §9.5.4).
const (
	mnBAPlain     = iota // IPv6(HA -> HoA) / MH (IPv4 CoA, from home)
	mnBARH2Done          // IPv6(HA -> HoA) / RH2(CoA, SL 0) / MH: engine processed the RH2
	mnBARH2Intact        // IPv6(HA -> CoA) / RH2(HoA, SL 1) / MH
)

// mnBA builds a BA from the HA to the HoA in the given form.
func mnBA(t testing.TB, form int, coa netip.Addr, seq uint16, st BAStatus, life time.Duration, opts ...Option) []byte {
	t.Helper()
	mh, err := EncodeMH(&BindingAck{Status: st, Seq: seq, Lifetime: LifetimeUnits(life), Options: opts}, mnHA, mnHoA)
	if err != nil {
		t.Fatal(err)
	}
	return mnIPv6(form, coa, header.ProtoMobility, mh)
}

// mnIPv6 wraps payload (protocol proto) as a packet from the HA to the
// HoA in the given form.
func mnIPv6(form int, coa netip.Addr, proto uint8, payload []byte) []byte {
	var ext []byte
	dst := mnHoA
	nh := proto
	if form != mnBAPlain {
		ext = make([]byte, header.RoutingType2Len)
		rh := header.RoutingType2(ext)
		if form == mnBARH2Done {
			rh.Encode(proto, coa)
			rh.SetSegmentsLeft(0)
		} else {
			rh.Encode(proto, mnHoA)
			dst = coa
		}
		nh = header.ProtoRouting
	}
	p := make([]byte, header.IPv6HeaderLen, header.IPv6HeaderLen+len(ext)+len(payload))
	p = append(append(p, ext...), payload...)
	header.IPv6(p).Encode(&header.IPv6Fields{
		PayloadLen: uint16(len(p) - header.IPv6HeaderLen), NextHeader: nh, HopLimit: 64, Src: mnHA, Dst: dst,
	})
	return p
}

// deliverBA hands a BA to the MN as the dataplane would (from SA2).
func (h *mnHarness) deliverBA(form int, coa netip.Addr, seq uint16, st BAStatus, life time.Duration, opts ...Option) {
	h.t.Helper()
	if !h.mn.Deliver(mnBA(h.t, form, coa, seq, st, life, opts...), 0x2002, 1, endpoint.Endpoint{}) {
		h.t.Fatal("Deliver returned false for a BA")
	}
	synctest.Wait()
}

// dataOut is where AfterSeal sends a data (tunnel-mode) packet now (dpEP:
// the dataplane's endpoint, unchanged).
func (h *mnHarness) dataOut() endpoint.Endpoint {
	h.t.Helper()
	clear := mnIPv6(mnBAPlain, netip.Addr{}, header.ProtoNoNext, make([]byte, 32))
	ip := header.IPv6(clear)
	ip.SetSrc(mnHoA)
	ip.SetDst(mnHA)
	b := mnSeal(clear, mnDataSPI, 9)
	before := append([]byte(nil), b.Bytes()...)
	out := dpEP
	if !h.mn.AfterSeal(b, mnDataSPI, &out) {
		h.t.Fatal("AfterSeal dropped a data packet")
	}
	if !bytes.Equal(before, b.Bytes()) {
		h.t.Fatal("AfterSeal changed a data packet; the underlay builds its outer header")
	}
	return out
}

func mnAddrOptions(bu *BindingUpdate) (alt, v4coa, v4hoa netip.Addr, n int) {
	for _, o := range bu.Options {
		switch o := o.(type) {
		case AlternateCoA:
			alt = o.Addr
		case IPv4CareOfAddress:
			v4coa = o.Addr
		case IPv4HomeAddress:
			v4hoa = o.Addr
		}
		n++
	}
	return
}

// registerAt moves to coa, answers the BU with an accepting BA (form
// chosen by the CoA family) and returns the BU.
func (h *mnHarness) registerAt(coa netip.Addr, opts ...Option) mnSent {
	h.t.Helper()
	if err := h.mn.Move(coa); err != nil {
		h.t.Fatal(err)
	}
	s := h.nextBU()
	form := mnBARH2Done
	if coa.Is4() {
		form = mnBAPlain
		// The keepalive sent before the BU (TestMNKeepaliveBeforeBU).
		if ka := h.drainKA(); len(ka) != 1 {
			h.t.Fatalf("keepalives before the BU from %v: %v, want one", coa, ka)
		}
	}
	h.deliverBA(form, coa, s.bu.Seq, BAStatusAccepted, 600*time.Second, opts...)
	if st := h.mn.Status(); st.State != BULRegistered || st.RegisteredCoA != coa {
		h.t.Fatalf("after BA: state %v registered %v, want registered at %v", st.State, st.RegisteredCoA, coa)
	}
	return s
}

func (h *mnHarness) close() {
	h.t.Helper()
	h.mu.Lock()
	h.fail = errors.New("closing")
	h.mu.Unlock()
	// Nobody answers the de-registration: bounded wait.
	_ = h.mn.Close()
}

// TestMNRegisterIPv6CoA: the first BU from an IPv6 CoA is `IPv6(HoA -> HA)
// / MH BU(A, H, seq, lifetime/4 s)` with an Alternate CoA option (RFC 4877
// §4.3), AfterSeal sends it from the CoA with a HAO (DR-3), and the BA
// registers the CoA; handover time is Move -> BA.
func TestMNRegisterIPv6CoA(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startMNHarness(t, nil)
		defer h.close()
		h.noBU() // nowhere to register from yet
		if got := h.dataOut(); got != dpEP {
			t.Errorf("data before registration: %+v, want keep", got)
		}
		moved := time.Now()
		if err := h.mn.Move(mnCoA6); err != nil {
			t.Fatal(err)
		}
		s := h.nextBU()
		if s.bu.Flags != BUFlagA|BUFlagH {
			t.Errorf("flags %#04x, want A|H", s.bu.Flags)
		}
		if s.bu.Lifetime != uint16(DefaultBULLifetime/LifetimeUnit) {
			t.Errorf("lifetime %d units, want %d", s.bu.Lifetime, DefaultBULLifetime/LifetimeUnit)
		}
		alt, v4coa, v4hoa, n := mnAddrOptions(s.bu)
		if alt != mnCoA6 || v4coa.IsValid() || v4hoa.IsValid() || n != 1 {
			t.Errorf("options %+v: want exactly Alternate CoA %v", s.bu.Options, mnCoA6)
		}
		if !s.ok || s.out != epIP(mnHA) {
			t.Fatalf("AfterSeal(BU) = %+v, %v; want ip to HA", s.out, s.ok)
		}
		w := header.IPv6(s.wire)
		if w.Src() != mnCoA6 || w.Dst() != mnHA || w.NextHeader() != header.ProtoDestOpts {
			t.Errorf("BU on the wire %v -> %v nh %d, want CoA -> HA / DestOpts", w.Src(), w.Dst(), w.NextHeader())
		}
		if hoa, ok := header.FindHomeAddress(s.wire[header.IPv6HeaderLen:]); !ok || hoa != mnHoA {
			t.Errorf("HAO %v %v, want %v", hoa, ok, mnHoA)
		}
		if binary.BigEndian.Uint32(s.esp) != mnSA1SPI {
			t.Error("ESP moved or changed")
		}
		if got := h.dataOut(); got != dpEP {
			t.Errorf("data before the BA: %+v, want keep (not registered)", got)
		}

		time.Sleep(300 * time.Millisecond)
		h.deliverBA(mnBARH2Done, mnCoA6, s.bu.Seq, BAStatusAccepted, 400*time.Second)
		st := h.mn.Status()
		if st.State != BULRegistered || st.RegisteredCoA != mnCoA6 || st.CoA != mnCoA6 || st.NAT {
			t.Errorf("status %+v", st)
		}
		if st.HandoverDuration != 300*time.Millisecond || !st.LastHandover.Equal(moved.Add(300*time.Millisecond)) {
			t.Errorf("handover %v at %v, want 300ms at %v", st.HandoverDuration, st.LastHandover, moved.Add(300*time.Millisecond))
		}
		if !st.Expires.Equal(moved.Add(400 * time.Second)) {
			t.Errorf("expires %v, want BU send time + granted 400 s", st.Expires.Sub(moved))
		}
		if st.BUSPI != mnSA1SPI || st.Counters.BUsSent != 1 || st.Counters.BAsAccepted != 1 || st.Counters.Handovers != 1 {
			t.Errorf("spi %#x counters %+v", st.BUSPI, st.Counters)
		}
		if got := h.dataOut(); got != epRaw(mnHA) {
			t.Errorf("data after the BA: %+v, want raw to HA", got)
		}
		if ev, ok := h.lastEvent(MNRegistered); !ok || ev.CoA != mnCoA6 || ev.Handover != 300*time.Millisecond {
			t.Errorf("registered event %+v %v", ev, ok)
		}
		if ka := h.drainKA(); len(ka) != 0 {
			t.Errorf("keepalives without NAT: %v", ka)
		}
		// Refresh at 80 % of the granted lifetime (counted from the BU).
		time.Sleep(320*time.Second - 300*time.Millisecond - time.Millisecond)
		h.noBU()
		time.Sleep(time.Millisecond)
		r := h.nextBU()
		if r.bu.Seq != s.bu.Seq+1 || r.out.Encap != endpoint.EncapIP {
			t.Errorf("refresh BU seq %d out %+v", r.bu.Seq, r.out)
		}
	})
}

// TestMNBAForms: the BA is accepted with no routing header, with an RH2
// the engine processed, and with an unprocessed RH2 (its address is the
// final destination for the checksum, RFC 6275 §6.1.1).
func TestMNBAForms(t *testing.T) {
	for _, form := range []int{mnBAPlain, mnBARH2Done, mnBARH2Intact} {
		synctest.Test(t, func(t *testing.T) {
			h := startMNHarness(t, nil)
			defer h.close()
			if err := h.mn.Move(mnCoA6); err != nil {
				t.Fatal(err)
			}
			s := h.nextBU()
			h.deliverBA(form, mnCoA6, s.bu.Seq, BAStatusAccepted, 100*time.Second)
			if st := h.mn.Status(); st.State != BULRegistered {
				t.Errorf("form %d: state %v counters %+v", form, st.State, st.Counters)
			}
		})
	}
}

// TestMNDataStaysOnOldCoAUntilBA is DR-3 (RFC 5555 §5.1): after a move the
// BU leaves from the new CoA while data keeps the registered CoA's path
// until the BA for the new CoA is accepted, across IPv6 -> IPv4 (NAT) ->
// IPv6.
func TestMNDataStaysOnOldCoAUntilBA(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startMNHarness(t, nil)
		defer h.close()
		h.registerAt(mnCoA6)
		raw6 := epRaw(mnHA)

		// IPv6 -> IPv4 behind a NAT.
		if err := h.mn.Move(mnCoA4); err != nil {
			t.Fatal(err)
		}
		s := h.nextBU()
		if s.out != epIP(mnHAV4) {
			t.Fatalf("BU from IPv4 CoA: %+v", s.out)
		}
		ip4 := header.IPv4(s.wire)
		u := header.UDP(s.wire[header.IPv4MinHeaderLen:])
		if !ip4.IsValid() || ip4.Src() != mnCoA4 || ip4.Dst() != mnHAV4 || u.SrcPort() != PortESPInUDP || u.DstPort() != PortDSMIPv6 {
			t.Errorf("BU outer %v -> %v udp %d -> %d, want CoA4 -> HAv4, 4500 -> 4191", ip4.Src(), ip4.Dst(), u.SrcPort(), u.DstPort())
		}
		inner := header.IPv6(s.wire[header.IPv4MinHeaderLen+header.UDPHeaderLen:])
		if !inner.IsValid() || inner.Src() != mnHoA || inner.Dst() != mnHA || inner.NextHeader() != header.ProtoESP {
			t.Errorf("inner %v -> %v nh %d, want HoA -> HA / ESP (no HAO)", inner.Src(), inner.Dst(), inner.NextHeader())
		}
		alt, v4coa, _, _ := mnAddrOptions(s.bu)
		if alt.IsValid() || v4coa != mnCoA4 {
			t.Errorf("BU options %+v: want IPv4 CoA option and no Alternate CoA", s.bu.Options)
		}
		if got := h.dataOut(); got != raw6 {
			t.Errorf("data before the BA: %+v, want still %+v", got, raw6)
		}
		if st := h.mn.Status(); st.RegisteredCoA != mnCoA6 || st.CoA != mnCoA4 {
			t.Errorf("registered %v current %v", st.RegisteredCoA, st.CoA)
		}
		// Retransmissions go from the new CoA too; data still old.
		time.Sleep(InitialBindackTimeout)
		s2 := h.nextBU()
		if s2.out != epIP(mnHAV4) || s2.bu.Seq != s.bu.Seq+1 {
			t.Errorf("retransmission %+v seq %d", s2.out, s2.bu.Seq)
		}
		if got := h.dataOut(); got != raw6 {
			t.Errorf("data during retransmission: %+v", got)
		}
		h.drainKA()
		h.deliverBA(mnBAPlain, mnCoA4, s2.bu.Seq, BAStatusAccepted, 600*time.Second, NATDetection{RefreshTime: 20})
		udp := epUDP(netip.AddrPortFrom(mnHAV4, PortESPInUDP))
		if got := h.dataOut(); got != udp {
			t.Errorf("data after the BA with NAT Detection: %+v, want %+v", got, udp)
		}
		if st := h.mn.Status(); !st.NAT || st.Keepalive != 20*time.Second || st.Data != udp {
			t.Errorf("NAT %v keepalive %v data %+v", st.NAT, st.Keepalive, st.Data)
		}

		// IPv4 -> IPv6: data stays in UDP until the BA.
		if err := h.mn.Move(mnCoA6b); err != nil {
			t.Fatal(err)
		}
		s3 := h.nextBU()
		if header.IPv6(s3.wire).Src() != mnCoA6b {
			t.Errorf("BU source %v, want %v", header.IPv6(s3.wire).Src(), mnCoA6b)
		}
		if got := h.dataOut(); got != udp {
			t.Errorf("data before the BA: %+v, want %+v", got, udp)
		}
		h.deliverBA(mnBARH2Intact, mnCoA6b, s3.bu.Seq, BAStatusAccepted, 600*time.Second)
		if got := h.dataOut(); got != raw6 {
			t.Errorf("data after the BA: %+v, want %+v", got, raw6)
		}
		if st := h.mn.Status(); st.NAT || st.Keepalive != 0 || st.Counters.Handovers != 3 {
			t.Errorf("NAT %v keepalive %v handovers %d", st.NAT, st.Keepalive, st.Counters.Handovers)
		}
	})
}

// TestMNKeepaliveBeforeBU: every BU sent from an IPv4 care-of address
// (first transmission and retransmissions) is preceded by an RFC 3948
// keepalive to (HAv4, 4500), so the NAT already maps MN:4500 <-> HA:4500
// when the HA's UDP-encapsulated data arrives (RFC 5555 §4.4.2); BUs from
// an IPv6 care-of address are not. A failing keepalive does not stop the
// BU.
func TestMNKeepaliveBeforeBU(t *testing.T) {
	hav4 := netip.AddrPortFrom(mnHAV4, PortESPInUDP)
	synctest.Test(t, func(t *testing.T) {
		var kaFail atomic.Bool
		var h *mnHarness
		h = newMNHarness(t, func(c *MNConfig) {
			c.Keepalive = func(dst netip.AddrPort) error {
				h.ka <- dst
				if kaFail.Load() {
					return errors.New("no route")
				}
				return nil
			}
		})
		defer h.close()
		if err := h.mn.Start(); err != nil {
			t.Fatal(err)
		}
		if s := h.registerAt(mnCoA6); s.kaBefore != 0 {
			t.Errorf("keepalive before a BU from an IPv6 CoA (%d)", s.kaBefore)
		}
		if ka := h.drainKA(); len(ka) != 0 {
			t.Errorf("keepalives for an IPv6 CoA: %v", ka)
		}

		if err := h.mn.Move(mnCoA4); err != nil {
			t.Fatal(err)
		}
		s := h.nextBU()
		if s.out != epIP(mnHAV4) || header.UDP(s.wire[header.IPv4MinHeaderLen:]).DstPort() != PortDSMIPv6 {
			t.Fatalf("BU from the IPv4 CoA went to %v", s.out)
		}
		if s.kaBefore != 1 {
			t.Errorf("%d keepalives queued when the BU was injected, want 1 (keepalive first)", s.kaBefore)
		}
		if ka := h.drainKA(); len(ka) != 1 || ka[0] != hav4 {
			t.Errorf("keepalives with the BU: %v, want one to %v", ka, hav4)
		}
		// The retransmission (no BA yet) is preceded by one too, even
		// when the keepalive fails.
		kaFail.Store(true)
		time.Sleep(InitialBindackTimeout)
		s2 := h.nextBU()
		if s2.bu.Seq != s.bu.Seq+1 || s2.kaBefore != 1 {
			t.Errorf("retransmission seq %d (want %d), keepalives before it %d (want 1)", s2.bu.Seq, s.bu.Seq+1, s2.kaBefore)
		}
		if ka := h.drainKA(); len(ka) != 1 || ka[0] != hav4 {
			t.Errorf("keepalives with the retransmission: %v", ka)
		}
		kaFail.Store(false)
		c := h.mn.Status().Counters
		if c.Keepalives != 1 || c.KeepaliveErrors != 1 || c.BUsSent != 3 {
			t.Errorf("counters %+v: want 1 keepalive, 1 error, 3 BUs", c)
		}

		// Back to IPv6: no keepalive with that BU.
		if err := h.mn.Move(mnCoA6b); err != nil {
			t.Fatal(err)
		}
		if s := h.nextBU(); s.kaBefore != 0 || header.IPv6(s.wire).Src() != mnCoA6b {
			t.Errorf("BU from %v with %d keepalives before it", header.IPv6(s.wire).Src(), s.kaBefore)
		}
		if ka := h.drainKA(); len(ka) != 0 {
			t.Errorf("keepalives for an IPv6 CoA: %v", ka)
		}
	})
}

// TestMNNATKeepalives: a BA with a NAT Detection option switches data to
// UDP 4500 and sends one keepalive at once (RFC 5555 §4.4.2), then one per
// Refresh Time (§4.3); the default is NATKATIMEOUT 110 s (§6). A NAT
// Detection option with Refresh Time all ones and F clear means no NAT:
// plain IPv4 ESP, no keepalives.
func TestMNNATKeepalives(t *testing.T) {
	hav4 := netip.AddrPortFrom(mnHAV4, PortESPInUDP)
	for _, tc := range []struct {
		name  string
		opts  []Option
		data  endpoint.Endpoint
		every time.Duration
	}{
		{"refresh 30", []Option{NATDetection{RefreshTime: 30}}, epUDP(hav4), 30 * time.Second},
		{"refresh default", []Option{NATDetection{}}, epUDP(hav4), NATKeepaliveTimeout},
		{"forced no refresh", []Option{NATDetection{F: true, RefreshTime: NATRefreshNone}}, epUDP(hav4), 0},
		{"no NAT", []Option{NATDetection{RefreshTime: NATRefreshNone}}, epRaw(mnHAV4), 0},
		{"no option", nil, epRaw(mnHAV4), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := startMNHarness(t, func(c *MNConfig) { c.BUL.Lifetime = time.Hour })
				defer h.close()
				h.registerAt(mnCoA4, tc.opts...)
				if got := h.dataOut(); got != tc.data {
					t.Errorf("data %+v, want %+v", got, tc.data)
				}
				ka := h.drainKA()
				if tc.data.Encap != endpoint.EncapUDP {
					if len(ka) != 0 {
						t.Errorf("keepalives without NAT: %v", ka)
					}
					time.Sleep(10 * time.Minute)
					// Only the one before each (refresh) BU.
					if ka, bus := h.drainKA(), h.drainBUs(); len(ka) != bus || bus == 0 {
						t.Errorf("keepalives without NAT: %v for %d BUs", ka, bus)
					}
					return
				}
				if len(ka) != 1 || ka[0] != hav4 {
					t.Fatalf("immediate keepalive: %v, want one to %v", ka, hav4)
				}
				if tc.every == 0 {
					time.Sleep(10 * time.Minute)
					if ka, bus := h.drainKA(), h.drainBUs(); len(ka) != bus || bus == 0 {
						t.Errorf("keepalives with Refresh Time all ones: %v for %d BUs (want one per BU)", ka, bus)
					}
					return
				}
				time.Sleep(tc.every - time.Millisecond)
				if ka := h.drainKA(); len(ka) != 0 {
					t.Errorf("keepalive early: %v", ka)
				}
				time.Sleep(time.Millisecond)
				if ka := h.drainKA(); len(ka) != 1 || ka[0] != hav4 {
					t.Errorf("keepalive after %v: %v", tc.every, ka)
				}
				time.Sleep(tc.every)
				if ka := h.drainKA(); len(ka) != 1 {
					t.Errorf("second periodic keepalive: %v", ka)
				}
				// 1 before the BU + 1 on the BA + 2 periodic.
				if c := h.mn.Status().Counters; c.Keepalives != 4 || c.KeepaliveErrors != 0 {
					t.Errorf("counters %+v", c)
				}
			})
		})
	}
}

// TestMNRetransmitAndResync: unanswered BUs are retransmitted with new
// sequence numbers after 1.5 s, 3 s, ... (RFC 6275 §11.8, §13); a BA with
// status 135 makes the MN adopt the HA's number and send the next one at
// once (§11.7.1); a stale BA is ignored.
func TestMNRetransmitAndResync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startMNHarness(t, nil)
		defer h.close()
		if err := h.mn.Move(mnCoA6); err != nil {
			t.Fatal(err)
		}
		s1 := h.nextBU()
		time.Sleep(InitialBindackTimeoutFirstReg - time.Millisecond)
		h.noBU()
		time.Sleep(time.Millisecond)
		s2 := h.nextBU()
		time.Sleep(2 * InitialBindackTimeoutFirstReg)
		s3 := h.nextBU()
		if s2.bu.Seq != s1.bu.Seq+1 || s3.bu.Seq != s1.bu.Seq+2 {
			t.Errorf("seqs %d %d %d, want consecutive", s1.bu.Seq, s2.bu.Seq, s3.bu.Seq)
		}
		if st := h.mn.Status(); st.Attempts != 3 || st.State != BULWaitAck {
			t.Errorf("attempts %d state %v", st.Attempts, st.State)
		}
		// A BA for an older BU is stale.
		h.deliverBA(mnBARH2Done, mnCoA6, s1.bu.Seq, BAStatusAccepted, time.Minute)
		if st := h.mn.Status(); st.State != BULWaitAck || st.Counters.BAsIgnored != 1 {
			t.Errorf("stale BA: state %v counters %+v", st.State, st.Counters)
		}
		h.noBU()
		// Status 135 carries the HA's last accepted number.
		h.deliverBA(mnBARH2Done, mnCoA6, 40000, BAStatusSeqOutOfWindow, 0)
		s4 := h.nextBU()
		if s4.bu.Seq != 40001 {
			t.Errorf("after 135: seq %d, want 40001", s4.bu.Seq)
		}
		if c := h.mn.Status().Counters; c.SeqResyncs != 1 {
			t.Errorf("counters %+v", c)
		}
		h.deliverBA(mnBARH2Done, mnCoA6, 40001, BAStatusAccepted, time.Minute)
		if st := h.mn.Status(); st.State != BULRegistered || st.Seq != 40001 {
			t.Errorf("state %v seq %d", st.State, st.Seq)
		}
	})
}

// TestMNRejected: a rejecting BA stops the BUs (RFC 6275 §11.7.3); the
// next Move tries again. A failed Inject is counted and retried.
func TestMNRejected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startMNHarness(t, nil)
		defer h.close()
		if err := h.mn.Move(mnCoA6); err != nil {
			t.Fatal(err)
		}
		s := h.nextBU()
		h.deliverBA(mnBARH2Done, mnCoA6, s.bu.Seq, BAStatusNotHomeSubnet, 0)
		st := h.mn.Status()
		if st.State != BULFailed || st.LastBAStatus != BAStatusNotHomeSubnet || st.Counters.BAsRejected != 1 || st.RegisteredCoA.IsValid() {
			t.Errorf("status %+v", st)
		}
		if ev, ok := h.lastEvent(MNRejected); !ok || ev.Status != BAStatusNotHomeSubnet {
			t.Errorf("rejected event %+v %v", ev, ok)
		}
		time.Sleep(time.Minute)
		h.noBU()
		if got := h.dataOut(); got != dpEP {
			t.Errorf("data %+v", got)
		}
		// Moving to the same CoA again retries after a failure.
		h.mu.Lock()
		h.fail = errors.New("no route")
		h.mu.Unlock()
		if err := h.mn.Move(mnCoA6); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if c := h.mn.Status().Counters; c.BUSendErrors != 1 || c.BUsSent != 1 {
			t.Errorf("counters after a failed Inject %+v", c)
		}
		h.mu.Lock()
		h.fail = nil
		h.mu.Unlock()
		time.Sleep(InitialBindackTimeoutFirstReg)
		s2 := h.nextBU()
		h.deliverBA(mnBARH2Done, mnCoA6, s2.bu.Seq, BAStatusAccepted, time.Minute)
		if st := h.mn.Status(); st.State != BULRegistered {
			t.Errorf("state %v", st.State)
		}
	})
}

// TestMNGoingHome: a CoA inside the home prefix (or the HoA) de-registers
// with a lifetime-0 BU sent from the HoA without HAO or Alternate CoA (RFC
// 6275 §11.5.4, §11.7.2; RFC 4877 §4.3): AfterSeal leaves it as the SA
// built it. After the BA data leaves as the SA built it too.
func TestMNGoingHome(t *testing.T) {
	for _, homeAddr := range []netip.Addr{mnHoA, netip.MustParseAddr("2001:db8:100::77")} {
		synctest.Test(t, func(t *testing.T) {
			h := startMNHarness(t, nil)
			defer h.close()
			h.registerAt(mnCoA4, NATDetection{RefreshTime: 30})
			h.drainKA()
			time.Sleep(2 * time.Second)
			if err := h.mn.Move(homeAddr); err != nil {
				t.Fatal(err)
			}
			s := h.nextBU()
			if s.bu.Lifetime != 0 || len(s.bu.Options) != 0 {
				t.Errorf("home BU lifetime %d options %+v, want 0 and none", s.bu.Lifetime, s.bu.Options)
			}
			if s.out != dpEP || !s.ok {
				t.Errorf("AfterSeal(home BU) = %+v %v", s.out, s.ok)
			}
			if w := header.IPv6(s.wire); w.Src() != mnHoA || w.NextHeader() != header.ProtoESP {
				t.Errorf("home BU wire %v nh %d", w.Src(), w.NextHeader())
			}
			if got := h.dataOut(); got.Encap != endpoint.EncapUDP {
				t.Errorf("data before the de-registration BA: %+v, want the old UDP path", got)
			}
			st := h.mn.Status()
			if !st.Home || st.CoA.IsValid() || st.State != BULDeregistering {
				t.Errorf("status %+v", st)
			}
			time.Sleep(100 * time.Millisecond)
			h.deliverBA(mnBAPlain, netip.Addr{}, s.bu.Seq, BAStatusAccepted, 0)
			st = h.mn.Status()
			if st.State != BULIdle || st.RegisteredCoA.IsValid() || st.NAT || st.HandoverDuration != 100*time.Millisecond {
				t.Errorf("after de-registration: %+v", st)
			}
			if got := h.dataOut(); got != dpEP {
				t.Errorf("data at home: %+v", got)
			}
			if ev, ok := h.lastEvent(MNDeregistered); !ok {
				t.Errorf("no deregistered event")
			} else if ev.Handover != 100*time.Millisecond {
				t.Errorf("event %+v", ev)
			}
			// Staying home sends nothing; no keepalives either.
			if err := h.mn.Move(homeAddr); err != nil {
				t.Fatal(err)
			}
			time.Sleep(30 * time.Minute)
			h.noBU()
			if ka := h.drainKA(); len(ka) != 0 {
				t.Errorf("keepalives at home: %v", ka)
			}
			// Leaving home registers again.
			h.registerAt(mnCoA6)
		})
	}
}

// TestMNClose: Close de-registers from the current CoA (lifetime 0,
// Alternate CoA still present) and returns once the BA is in; without a
// BA it returns ErrDeregTimeout after CloseTimeout, having retransmitted.
func TestMNClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startMNHarness(t, nil)
		h.registerAt(mnCoA6)
		done := make(chan error, 1)
		go func() { done <- h.mn.Close() }()
		s := h.nextBU()
		alt, _, _, _ := mnAddrOptions(s.bu)
		if s.bu.Lifetime != 0 || alt != mnCoA6 || s.out.Encap != endpoint.EncapIP {
			t.Errorf("de-registration BU lifetime %d alt %v out %+v", s.bu.Lifetime, alt, s.out)
		}
		h.deliverBA(mnBARH2Done, mnCoA6, s.bu.Seq, BAStatusAccepted, 0)
		if err := <-done; err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := h.mn.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if err := h.mn.Move(mnCoA6b); !errors.Is(err, ErrMNClosed) {
			t.Errorf("Move after Close: %v", err)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		h := startMNHarness(t, nil)
		h.registerAt(mnCoA6)
		start := time.Now()
		err := h.mn.Close()
		if !errors.Is(err, ErrDeregTimeout) || time.Since(start) != DefaultMNCloseTimeout {
			t.Errorf("Close without BA: %v after %v", err, time.Since(start))
		}
		if n := len(h.sent); n != 2 { // the BU and one retransmission at +1 s
			t.Errorf("%d de-registration BUs, want 2", n)
		}
	})
	// Never registered: Close does not wait.
	synctest.Test(t, func(t *testing.T) {
		h := startMNHarness(t, nil)
		start := time.Now()
		if err := h.mn.Close(); err != nil || time.Since(start) != 0 {
			t.Errorf("Close: %v after %v", err, time.Since(start))
		}
	})
}

// TestMNIPv4HomeAddress: with HoA4 configured registrations carry an IPv4
// Home Address option (RFC 5555 §3.1.1); the IPv4 Address Acknowledgement
// is recorded; a BA without it makes the MN stop sending the option
// (RFC 5555 §2.3.1); de-registrations never carry it.
func TestMNIPv4HomeAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startMNHarness(t, func(c *MNConfig) { c.HoA4 = mnHoA4 })
		defer h.close()
		s := h.registerAt(mnCoA6, IPv4AddressAck{Status: IPv4AckSuccess, PrefixLen: 32, Addr: mnHoA4})
		if _, _, v4hoa, _ := mnAddrOptions(s.bu); v4hoa != mnHoA4 {
			t.Errorf("BU options %+v: want IPv4 Home Address %v", s.bu.Options, mnHoA4)
		}
		if st := h.mn.Status(); st.IPv4HoAAck == nil || st.IPv4HoAAck.Addr != mnHoA4 || st.IPv4HoAUnsupported {
			t.Errorf("ack %+v unsupported %v", st.IPv4HoAAck, st.IPv4HoAUnsupported)
		}
		s = h.registerAt(mnCoA6b) // no ack this time
		if _, _, v4hoa, _ := mnAddrOptions(s.bu); v4hoa != mnHoA4 {
			t.Errorf("second BU lacks the option")
		}
		if !h.mn.Status().IPv4HoAUnsupported {
			t.Error("BA without IPv4 ack not noticed")
		}
		s = h.registerAt(mnCoA4)
		if _, _, v4hoa, _ := mnAddrOptions(s.bu); v4hoa.IsValid() {
			t.Errorf("option sent again after the HA ignored it: %+v", s.bu.Options)
		}
	})
}

// TestMNDeliverHostile: Deliver never panics and consumes only MH (and
// MPA) packets; malformed or misaddressed MH are counted and change
// nothing.
func TestMNDeliverHostile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startMNHarness(t, nil)
		defer h.close()
		if err := h.mn.Move(mnCoA6); err != nil {
			t.Fatal(err)
		}
		s := h.nextBU()
		good := mnBA(t, mnBARH2Done, mnCoA6, s.bu.Seq, BAStatusAccepted, time.Minute)

		badSum := append([]byte(nil), good...)
		badSum[len(badSum)-1] ^= 1
		// Well-formed BAs (valid checksums) with the wrong addresses.
		other := netip.MustParseAddr("2001:db8:100::99")
		baFrom := func(src, dst netip.Addr) []byte {
			mh, err := EncodeMH(&BindingAck{Seq: s.bu.Seq, Lifetime: 15}, src, dst)
			if err != nil {
				t.Fatal(err)
			}
			p := mnIPv6(mnBAPlain, netip.Addr{}, header.ProtoMobility, mh)
			header.IPv6(p).SetSrc(src)
			header.IPv6(p).SetDst(dst)
			return p
		}
		wrongSrc := baFrom(mnCoA6b, mnHoA)
		wrongDst := baFrom(mnHA, other)
		be, _ := EncodeMH(&BindingError{Status: BEStatusUnknownType, HomeAddress: mnHoA}, mnHA, mnHoA)
		notBA := mnIPv6(mnBAPlain, netip.Addr{}, header.ProtoMobility, be)
		twoRH := mnIPv6(mnBAPlain, netip.Addr{}, header.ProtoMobility, nil)
		{
			mh := good[header.IPv6HeaderLen+header.RoutingType2Len:]
			r1 := make([]byte, header.RoutingType2Len)
			header.RoutingType2(r1).Encode(header.ProtoRouting, mnCoA6)
			header.RoutingType2(r1).SetSegmentsLeft(0)
			r2 := make([]byte, header.RoutingType2Len)
			header.RoutingType2(r2).Encode(header.ProtoMobility, mnCoA6)
			header.RoutingType2(r2).SetSegmentsLeft(0)
			twoRH = append(append(append(twoRH, r1...), r2...), mh...)
			header.IPv6(twoRH).SetNextHeader(header.ProtoRouting)
			header.IPv6(twoRH).SetPayloadLen(len(twoRH) - header.IPv6HeaderLen)
		}
		truncMH := mnIPv6(mnBAPlain, netip.Addr{}, header.ProtoMobility, []byte{59, 1, 6, 0})
		mpa := mnIPv6(mnBAPlain, netip.Addr{}, header.ProtoICMPv6, []byte{icmpv6TypeMPA, 0, 0, 0, 0, 0, 0, 0})
		echo := mnIPv6(mnBAPlain, netip.Addr{}, header.ProtoICMPv6, []byte{128, 0, 0, 0, 0, 0, 0, 0})
		tcp := mnIPv6(mnBAPlain, netip.Addr{}, header.ProtoTCP, make([]byte, 20))
		ip4 := make([]byte, 28)
		ip4[0] = 0x45
		truncRH := mnIPv6(mnBAPlain, netip.Addr{}, header.ProtoRouting, []byte{135, 2, 2, 1})

		for _, tc := range []struct {
			name     string
			p        []byte
			consumed bool
		}{
			{"bad checksum", badSum, true},
			{"wrong source", wrongSrc, true},
			{"wrong home address", wrongDst, true},
			{"binding error", notBA, true},
			{"two RH2", twoRH, true},
			{"truncated MH", truncMH, true},
			{"MPA", mpa, true},
			{"echo request", echo, false},
			{"TCP", tcp, false},
			{"IPv4", ip4, false},
			{"truncated RH", truncRH, false},
			{"empty", nil, false},
			{"short", good[:30], false},
			{"payload length beyond packet", good[:len(good)-8], false},
		} {
			if got := h.mn.Deliver(tc.p, 0x2002, 7, endpoint.Endpoint{}); got != tc.consumed {
				t.Errorf("%s: Deliver = %v, want %v", tc.name, got, tc.consumed)
			}
		}
		st := h.mn.Status()
		if st.State != BULWaitAck || st.RegisteredCoA.IsValid() || st.HaveBA {
			t.Errorf("hostile input changed the state: %+v", st)
		}
		if c := st.Counters; c.Malformed != 3 || c.Unexpected != 3 || c.MPAs != 1 {
			t.Errorf("counters %+v, want malformed 3 unexpected 3 mpa 1", c)
		}
		if !h.mn.Deliver(good, 0x2002, 8, endpoint.Endpoint{}) || h.mn.Status().State != BULRegistered {
			t.Error("the good BA was not accepted after the hostile ones")
		}
	})
}

// FuzzMNDeliver: no input panics Deliver or breaks the registration state.
func FuzzMNDeliver(f *testing.F) {
	f.Add(mnBA(f, mnBAPlain, netip.Addr{}, 1, 0, time.Minute))
	f.Add(mnBA(f, mnBARH2Done, mnCoA6, 1, 0, time.Minute, NATDetection{RefreshTime: 5}, BindingRefreshAdvice{Interval: 2}))
	f.Add(mnBA(f, mnBARH2Intact, mnCoA6, 1, 135, 0, IPv4AddressAck{Addr: mnHoA4}))
	f.Add([]byte{0x60})
	f.Fuzz(func(t *testing.T, p []byte) {
		mn, err := NewMobileNode(MNConfig{HoA: mnHoA, HA: mnHA, HAV4: mnHAV4, SAD: &mnSAD{spi: 1}, Inject: func([]byte) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		mn.Deliver(p, 1, 1, endpoint.Endpoint{})
		if st := mn.Status(); st.State != BULIdle || st.RegisteredCoA.IsValid() {
			t.Fatalf("state %v registered %v from one packet with nothing outstanding", st.State, st.RegisteredCoA)
		}
	})
}

// TestMNMoveValidation: bad CoAs and an IPv4 CoA without HA IPv4 address
// are refused; a missing SA1 fails Start and Move.
func TestMNMoveValidation(t *testing.T) {
	h := newMNHarness(t, func(c *MNConfig) { c.HAV4 = netip.Addr{} })
	for _, a := range []string{"fe80::1", "ff02::1", "::", "::1", "127.0.0.1", "169.254.1.1", "255.255.255.255", "224.0.0.1", "0.0.0.0"} {
		if err := h.mn.Move(netip.MustParseAddr(a)); !errors.Is(err, ErrBadCoA) {
			t.Errorf("Move(%s): %v, want ErrBadCoA", a, err)
		}
	}
	if err := h.mn.Move(netip.Addr{}); !errors.Is(err, ErrBadCoA) {
		t.Errorf("Move(invalid): %v", err)
	}
	if err := h.mn.Move(mnCoA4); !errors.Is(err, ErrBadCoA) {
		t.Errorf("IPv4 CoA without HAV4: %v", err)
	}
	h.sad.mu.Lock()
	h.sad.none = true
	h.sad.mu.Unlock()
	if err := h.mn.Move(mnCoA6); !errors.Is(err, ErrNoBUSA) {
		t.Errorf("Move without SA1: %v", err)
	}
	if err := h.mn.Start(); !errors.Is(err, ErrNoBUSA) {
		t.Errorf("Start without SA1: %v", err)
	}
	if st := h.mn.Status(); st.CoA.IsValid() || st.State != BULIdle {
		t.Errorf("a refused Move changed the state: %+v", st)
	}
	if err := h.mn.Close(); err != nil {
		t.Errorf("Close of a never-started MN: %v", err)
	}
	if err := h.mn.Start(); !errors.Is(err, ErrMNClosed) {
		t.Errorf("Start after Close: %v", err)
	}
}

func TestNewMobileNodeValidation(t *testing.T) {
	ok := MNConfig{HoA: mnHoA, HA: mnHA, SAD: &mnSAD{}, Inject: func([]byte) error { return nil }}
	if _, err := NewMobileNode(ok); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	for name, mut := range map[string]func(*MNConfig){
		"no HoA":           func(c *MNConfig) { c.HoA = netip.Addr{} },
		"IPv4 HoA":         func(c *MNConfig) { c.HoA = mnHoA4 },
		"link-local HoA":   func(c *MNConfig) { c.HoA = netip.MustParseAddr("fe80::1") },
		"no HA":            func(c *MNConfig) { c.HA = netip.Addr{} },
		"IPv6 HAV4":        func(c *MNConfig) { c.HAV4 = mnHA },
		"IPv6 HoA4":        func(c *MNConfig) { c.HoA4 = mnHoA },
		"prefix not HoA's": func(c *MNConfig) { c.HomePrefix = netip.MustParsePrefix("2001:db8:9::/64") },
		"IPv4 home prefix": func(c *MNConfig) { c.HomePrefix = netip.MustParsePrefix("192.0.2.0/24") },
		"no SAD":           func(c *MNConfig) { c.SAD = nil },
		"no Inject":        func(c *MNConfig) { c.Inject = nil },
		"multicast HoA4":   func(c *MNConfig) { c.HoA4 = netip.MustParseAddr("224.0.0.5") },
		"unspecified HoA4": func(c *MNConfig) { c.HoA4 = netip.MustParseAddr("0.0.0.0") },
		"multicast HA":     func(c *MNConfig) { c.HA = netip.MustParseAddr("ff05::2") },
		"unspecified HA":   func(c *MNConfig) { c.HA = netip.IPv6Unspecified() },
		"loopback HoA":     func(c *MNConfig) { c.HoA = netip.IPv6Loopback() },
		"IPv4-mapped HoA":  func(c *MNConfig) { c.HoA = netip.AddrFrom16(mnHoA4.As16()) },
	} {
		c := ok
		mut(&c)
		if _, err := NewMobileNode(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestMNSPIRefreshedOnMove: SA1's SPI is looked up again at every Move
// (a reconfigured SAD), and AfterSeal follows it.
func TestMNSPIRefreshedOnMove(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startMNHarness(t, nil)
		defer h.close()
		h.registerAt(mnCoA6)
		h.sad.mu.Lock()
		h.sad.spi = 0x9999
		h.sad.mu.Unlock()
		if err := h.mn.Move(mnCoA6b); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		<-h.sent // sealed with the old SPI by the fake: treated as data now
		if st := h.mn.Status(); st.BUSPI != 0x9999 {
			t.Errorf("BU SPI %#x, want 0x9999", st.BUSPI)
		}
		clear := mnIPv6(mnBAPlain, netip.Addr{}, header.ProtoMobility, make([]byte, 16))
		header.IPv6(clear).SetSrc(mnHoA)
		header.IPv6(clear).SetDst(mnHA)
		b := mnSeal(clear, 0x9999, 1)
		out := dpEP
		if ok := h.mn.AfterSeal(b, 0x9999, &out); !ok || out != epIP(mnHA) || header.IPv6(b.Bytes()).Src() != mnCoA6b {
			t.Errorf("AfterSeal with the new SA1 SPI: %+v %v", out, ok)
		}
	})
}

// TestMNAfterSealBadBU: a BU that cannot be rewritten (no headroom,
// malformed) is dropped and counted, never sent from the wrong address.
func TestMNAfterSealBadBU(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startMNHarness(t, nil)
		defer h.close()
		h.registerAt(mnCoA6)
		b := new(pkt.Buf)
		b.Reset()
		b.Set([]byte{0x60, 0, 0})
		ep := dpEP
		if h.mn.AfterSeal(b, mnSA1SPI, &ep) || ep != dpEP {
			t.Errorf("malformed BU not dropped (to %v)", ep)
		}
		clear := mnIPv6(mnBAPlain, netip.Addr{}, header.ProtoMobility, make([]byte, 16))
		sealed := mnSeal(clear, mnSA1SPI, 1)
		nb := new(pkt.Buf)
		nb.SetBytes(0, sealed.Len()) // no headroom for the HAO
		copy(nb.Bytes(), sealed.Bytes())
		if h.mn.AfterSeal(nb, mnSA1SPI, &ep) || ep != dpEP {
			t.Errorf("BU without headroom not dropped (to %v)", ep)
		}
		if c := h.mn.Status().Counters; c.AfterSealErrors != 2 {
			t.Errorf("counters %+v", c)
		}
	})
}

// mnAfterSealSetup returns a registered MN (IPv4 CoA behind a NAT, so data
// goes in UDP) and a sealed data packet.
func mnAfterSealSetup(tb testing.TB) (*MobileNode, *pkt.Buf) {
	mn, err := NewMobileNode(MNConfig{HoA: mnHoA, HA: mnHA, HAV4: mnHAV4, SAD: &mnSAD{spi: mnSA1SPI}, Inject: func([]byte) error { return nil }})
	if err != nil {
		tb.Fatal(err)
	}
	mn.mu.Lock()
	if err := mn.lookupSPI(); err != nil {
		tb.Fatal(err)
	}
	r := *mn.route.Load()
	r.data = mn.dataTo(mnCoA4, true)
	r.buCoA = mnCoA4
	mn.route.Store(&r)
	mn.mu.Unlock()
	clear := mnIPv6(mnBAPlain, netip.Addr{}, header.ProtoNoNext, make([]byte, 1400))
	header.IPv6(clear).SetSrc(mnHoA)
	header.IPv6(clear).SetDst(mnHA)
	return mn, mnSeal(clear, mnDataSPI, 1)
}

// TestMNAfterSealAllocs: the per-packet hook never allocates, for data and
// for BUs (DR-3 rewrite).
func TestMNAfterSealAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	mn, b := mnAfterSealSetup(t)
	ep := dpEP
	if n := testing.AllocsPerRun(1000, func() { mn.AfterSeal(b, mnDataSPI, &ep) }); n != 0 {
		t.Errorf("data: %v allocs, want 0", n)
	}
	off, orig := b.Off(), append([]byte(nil), b.Bytes()...)
	if n := testing.AllocsPerRun(1000, func() {
		b.SetBytes(off, len(orig))
		copy(b.Bytes(), orig)
		if !mn.AfterSeal(b, mnSA1SPI, &ep) {
			t.Fatal("BU rewrite failed")
		}
	}); n != 0 {
		t.Errorf("BU: %v allocs, want 0", n)
	}
}

// BenchmarkMNAfterSeal: the MN's per-packet hook on data packets.
func BenchmarkMNAfterSeal(b *testing.B) {
	mn, buf := mnAfterSealSetup(b)
	b.ReportAllocs()
	b.SetBytes(int64(buf.Len()))
	ep := dpEP
	for b.Loop() {
		if mn.AfterSeal(buf, mnDataSPI, &ep); ep.Encap != endpoint.EncapUDP {
			b.Fatal(ep)
		}
	}
}
