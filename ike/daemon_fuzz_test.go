package ike

import (
	"crypto/rand"
	"net/netip"
	"testing"
)

// recorder is a Transport that keeps what is sent.
type recorder struct{ sent []packet }

func (r *recorder) Send(msg []byte, local, remote netip.AddrPort) error {
	r.sent = append(r.sent, packet{b: append([]byte(nil), msg...), src: local, dst: remote})
	return nil
}

// fuzzInitiator is the initiator side the fuzz target plays: it sends a
// real IKE_SA_INIT and keeps its key exchange, so that it can seal an
// IKE_AUTH request the responder will decrypt.
type fuzzInitiator struct {
	ke   *KeyExchange
	ni   []byte
	spii uint64
	msg  []byte
}

func newFuzzInitiator(t testing.TB, src, dst netip.AddrPort) *fuzzInitiator {
	ke, err := NewKeyExchange(DHCurve25519, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &fuzzInitiator{ke: ke, ni: make([]byte, 32), spii: 0x0102030405060708}
	rand.Read(f.ni)
	srcN, dstN := NATDetectionNotifies(f.spii, 0, src, dst)
	props := ikeProps(t, "aes128gcm16-prfsha256-curve25519")
	props[0].Number = 1
	m := Message{SPIi: f.spii, Exchange: IKE_SA_INIT, Flags: FlagInitiator, Payloads: []Payload{
		&SA{Proposals: props}, &KE{Group: DHCurve25519, Data: ke.PublicValue()}, &Nonce{Data: f.ni}, srcN, dstN}}
	if f.msg, err = m.Append(nil); err != nil {
		t.Fatal(err)
	}
	return f
}

// seal protects inner (any bytes, as the SK payload's plaintext with
// first as its Next Payload) under the keys the responder's answer gives.
func (f *fuzzInitiator) seal(resp []byte, first PayloadType, msgID uint32, inner []byte) []byte {
	m, err := Decode(resp)
	if err != nil || m.SPIr == 0 {
		return nil
	}
	var ke *KE
	var nr *Nonce
	for _, p := range m.Payloads {
		switch p := p.(type) {
		case *KE:
			ke = p
		case *Nonce:
			nr = p
		}
	}
	if ke == nil || nr == nil {
		return nil
	}
	gir, err := f.ke.SharedSecret(ke.Data)
	if err != nil {
		return nil
	}
	suite := SKSuite{Encr: EncrAESGCM16, KeyBits: 128}
	seed, err := SKEYSEED(PRFHMACSHA2_256, f.ni, nr.Data, gir)
	if err != nil {
		return nil
	}
	k, err := DeriveIKEKeys(PRFHMACSHA2_256, suite, seed, f.ni, nr.Data, f.spii, m.SPIr)
	if err != nil {
		return nil
	}
	out, _, err := NewSKCiphers(suite, k, true)
	if err != nil {
		return nil
	}
	prefix, err := (&Message{SPIi: f.spii, SPIr: m.SPIr, Exchange: IKE_AUTH, Flags: FlagInitiator, MessageID: msgID,
		Payloads: []Payload{&Encrypted{NextPayload: first}}}).Append(nil)
	if err != nil {
		return nil
	}
	b, err := out.Seal(nil, prefix, inner)
	if err != nil {
		return nil
	}
	return b
}

// FuzzResponder drives a responder's pre-authentication path: an
// arbitrary datagram, then a real IKE_SA_INIT and an IKE_AUTH request
// whose decrypted payloads are the fuzzer's. Nothing panics, and since
// the fuzzer cannot know the PSK nothing is ever installed or even
// allocated in the kernel.
func FuzzResponder(f *testing.F) {
	src, dst := netip.MustParseAddrPort("192.0.2.1:500"), netip.MustParseAddrPort("192.0.2.2:500")
	ini := newFuzzInitiator(f, src, dst)
	idi := IdentityPayload(IdentityFromAddr(src.Addr()), false)
	esp := espProps(f, "aes128gcm16")
	esp[0].Number, esp[0].SPI = 1, []byte{0xc0, 0, 0, 1}
	inner, first, err := AppendPayloads(nil, []Payload{idi, &Auth{Method: AuthSharedKey, Data: make([]byte, 32)},
		&SA{Proposals: esp},
		&TS{Initiator: true, Selectors: []TrafficSelector{prefixTS("10.1.0.0/16")}},
		&TS{Selectors: []TrafficSelector{prefixTS("10.2.0.0/16")}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ini.msg, byte(first), inner)
	f.Add([]byte{}, byte(PayloadIDi), []byte{})
	f.Add(ini.msg[:40], byte(PayloadNotify), inner[:20])
	f.Fuzz(func(t *testing.T, raw []byte, first byte, inner []byte) {
		fuzzResponderOnce(t, ini, src, dst, raw, first, inner)
	})
}

// fuzzResponderOnce is one FuzzResponder input on a fresh, unstarted
// responder.
func fuzzResponderOnce(t *testing.T, ini *fuzzInitiator, src, dst netip.AddrPort, raw []byte, first byte, inner []byte) *Daemon {
	k := newFakeKernel(0)
	tr := &recorder{}
	c := conn(t, "r", dst.Addr(), src.Addr(), false)
	c.RemoteAddrs = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}
	d, err := New(Config{Connections: []Connection{c}, Kernel: k, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	// The loop's methods, called directly: the daemon is not started.
	d.handle(datagram{b: append([]byte(nil), raw...), local: dst, remote: src})
	d.handle(datagram{b: append([]byte(nil), ini.msg...), local: dst, remote: src})
	var resp []byte
	for _, p := range tr.sent {
		if h, err := ParseHeader(p.b); err == nil && h.Exchange == IKE_SA_INIT && h.SPIi == ini.spii && h.SPIr != 0 {
			resp = p.b
		}
	}
	if resp != nil {
		if b := ini.seal(resp, PayloadType(first), 1, inner); b != nil {
			d.handle(datagram{b: b, local: dst, remote: src})
			// And again: a retransmission is answered from the cache.
			d.handle(datagram{b: b, local: dst, remote: src})
		}
	}
	if len(k.in) != 0 || len(k.out) != 0 || len(k.policies) != 0 || len(k.allocated) != 0 {
		t.Fatalf("kernel touched: %v", k.calls)
	}
	for _, sa := range d.sas {
		if sa.state == stateEstablished {
			t.Fatal("an IKE SA was established without the PSK")
		}
	}
	st := d.snapshotStats()
	d.deleteAll()
	d.stats = st
	return d
}

// TestFuzzResponderSeed: the seed reaches the AUTH check (and fails it).
func TestFuzzResponderSeed(t *testing.T) {
	src, dst := netip.MustParseAddrPort("192.0.2.1:500"), netip.MustParseAddrPort("192.0.2.2:500")
	ini := newFuzzInitiator(t, src, dst)
	inner, first, err := AppendPayloads(nil, []Payload{IdentityPayload(IdentityFromAddr(src.Addr()), false),
		&Auth{Method: AuthSharedKey, Data: make([]byte, 32)}})
	if err != nil {
		t.Fatal(err)
	}
	d := fuzzResponderOnce(t, ini, src, dst, nil, byte(first), inner)
	if d.stats.Failures["auth_failed"] != 1 || d.stats.Exchanges["IKE_SA_INIT"] != 1 {
		t.Fatalf("failures %v exchanges %v", d.stats.Failures, d.stats.Exchanges)
	}
}

// TestAnswerStrongswanInit: our responder, with the default proposals,
// answers charon's real IKE_SA_INIT request (testdata) with a full
// response in the group of charon's KE and finds no NAT.
func TestAnswerStrongswanInit(t *testing.T) {
	v := strongswanVectors(t)[0].msg
	req, err := Decode(v)
	if err != nil {
		t.Fatal(err)
	}
	var group DHGroup
	for _, p := range req.Payloads {
		if ke, ok := p.(*KE); ok {
			group = ke.Group
		}
	}
	src, dst := netip.MustParseAddrPort("192.0.2.1:500"), netip.MustParseAddrPort("192.0.2.2:5000")
	c := conn(t, "r", dst.Addr(), src.Addr(), false)
	c.Proposals = DefaultIKEProposals()
	c.LocalPort = 5000
	tr := &recorder{}
	d, err := New(Config{Connections: []Connection{c}, Kernel: newFakeKernel(0), Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	// A socket that cannot tell its address: LocalAddrs stands in.
	d.handle(datagram{b: v, local: netip.MustParseAddrPort("0.0.0.0:5000"), remote: src})
	if len(tr.sent) != 1 || tr.sent[0].dst != src {
		t.Fatalf("sent %d", len(tr.sent))
	}
	for _, s := range d.sas {
		if s.local != dst {
			t.Fatalf("local %v, want %v", s.local, dst)
		}
	}
	resp, err := Decode(tr.sent[0].b)
	if err != nil {
		t.Fatal(err)
	}
	if resp.SPIi != req.SPIi || resp.SPIr == 0 || resp.Flags != FlagResponse || resp.Exchange != IKE_SA_INIT {
		t.Fatalf("header %+v", resp)
	}
	var ke *KE
	var sa *SA
	for _, p := range resp.Payloads {
		switch p := p.(type) {
		case *KE:
			ke = p
		case *SA:
			sa = p
		}
	}
	if ke == nil || ke.Group != group || sa == nil || len(sa.Proposals) != 1 {
		t.Fatalf("payloads %#v (charon's group %v)", resp.Payloads, group)
	}
	if err := CheckChosen(req.Payloads[0].(*SA).Proposals, sa.Proposals[0]); err != nil {
		t.Fatalf("charon would refuse our choice: %v", err)
	}
	// charon's NAT-D hashes of our response match what it sent to.
	natD, natS := detectNAT(resp.Payloads, resp.SPIi, resp.SPIr, src, dst)
	if natD || natS {
		t.Fatalf("our NAT-D hashes do not match our addresses: %v %v", natD, natS)
	}
	for _, s := range d.sas {
		if s.natLocal || s.natRemote || s.encap {
			t.Fatalf("NAT seen: %v %v", s.natLocal, s.natRemote)
		}
	}
	t.Logf("chose %s", FormatProposal(sa.Proposals[0]))
}
