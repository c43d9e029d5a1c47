package main

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
	"github.com/mipsec/mipsec/sad"
)

func newPacketBuf(t *testing.T, p []byte) *pkt.Buf {
	t.Helper()
	b := pkt.Get()
	t.Cleanup(func() { pkt.Put(b) })
	b.Reset()
	b.Set(p)
	return b
}

// udp4 builds an IPv4/UDP packet from src to dst with n payload bytes.
func udp4(src, dst netip.Addr, n int) []byte {
	p := make([]byte, 28+n)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[8] = 64
	p[9] = 17
	s, d := src.As4(), dst.As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	binary.BigEndian.PutUint16(p[10:], ^header.Checksum(p[:20], 0))
	binary.BigEndian.PutUint16(p[20:], 1234)
	binary.BigEndian.PutUint16(p[22:], 5678)
	binary.BigEndian.PutUint16(p[24:], uint16(8+n))
	return p
}

// sealedESP seals inner with the outbound SA and returns the ESP part (SPI
// first), as the dataplane hands it to the underlay.
func sealedESP(t *testing.T, sa *sad.SA, inner []byte) []byte {
	t.Helper()
	b := newPacketBuf(t, inner)
	if v := sa.Seal(b); v != esp.OK {
		t.Fatalf("seal: %v", v)
	}
	return bytes.Clone(b.Bytes()[20:]) // tunnel mode, IPv4 outer header
}

// feedCapture drives the fake dataplane: whenever a capture is installed
// it sends inner and outer packets through it until stop closes.
func feedCapture(t *testing.T, ft *fakeTarget, inner, espb []byte, ep endpoint.Endpoint, stop <-chan struct{}) {
	go func() {
		select {
		case <-ft.capSet:
		case <-stop:
			return
		}
		tk := time.NewTicker(2 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			if c := ft.tap(); c != nil {
				c.Inner(inner, true)
				c.Outer(espb, ep, true)
			}
		}
	}()
}

func readPcap(t *testing.T, path string) (layers.LinkType, []gopacket.Packet) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var ps []gopacket.Packet
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		p := gopacket.NewPacket(data, r.LinkType(), gopacket.Default)
		p.Metadata().CaptureInfo = ci
		ps = append(ps, p)
	}
	return r.LinkType(), ps
}

func TestCaptureOuter(t *testing.T) {
	s, ft := startServer(t)
	inner := udp4(netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.200"), 100)
	espb := sealedESP(t, ft.sad.Lookup(sad.Outbound, 0xa001), inner)
	stop := make(chan struct{})
	defer close(stop)
	feedCapture(t, ft, inner, espb, endpoint.Endpoint{Addr: netip.AddrPortFrom(tunB, 0)}, stop)

	file := filepath.Join(t.TempDir(), "out.pcap")
	_, errs, rc := cli(t, s, "capture", "-w", file, "--outer", "-c", "3")
	if rc != 0 {
		t.Fatalf("capture: exit %d: %s", rc, errs)
	}
	if !strings.Contains(errs, "3 packets written") {
		t.Errorf("stderr: %s", errs)
	}
	lt, ps := readPcap(t, file)
	if lt != layers.LinkTypeRaw {
		t.Errorf("link type %v, want raw", lt)
	}
	if len(ps) != 3 {
		t.Fatalf("%d packets, want 3", len(ps))
	}
	for i, p := range ps {
		if el := p.ErrorLayer(); el != nil {
			t.Errorf("packet %d: decode error %v", i, el.Error())
		}
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if ip == nil || ip.SrcIP.String() != tunA.String() || ip.DstIP.String() != tunB.String() || ip.Protocol != layers.IPProtocolESP {
			t.Errorf("packet %d: outer %v", i, ip)
		}
		e, _ := p.Layer(layers.LayerTypeIPSecESP).(*layers.IPSecESP)
		if e == nil {
			t.Fatalf("packet %d: no ESP layer:\n%s", i, p.Dump())
		}
		if e.SPI != 0xa001 || e.Seq != 1 {
			t.Errorf("packet %d: SPI 0x%x seq %d", i, e.SPI, e.Seq)
		}
		// The rebuilt IPv4 header checksum is valid.
		if header.Checksum(p.Data()[:20], 0) != 0xffff {
			t.Errorf("packet %d: bad IPv4 header checksum", i)
		}
	}
	// The tap is removed when the capture ends.
	deadline := time.Now().Add(2 * time.Second)
	for ft.tap() != nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if ft.tap() != nil {
		t.Error("capture tap still installed after the capture ended")
	}
}

func TestCaptureBothUDPDuration(t *testing.T) {
	s, ft := startServer(t)
	inner := udp4(netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.200"), 40)
	espb := sealedESP(t, ft.sad.Lookup(sad.Outbound, 0xa001), inner)
	stop := make(chan struct{})
	defer close(stop)
	feedCapture(t, ft, inner, espb, endpoint.Endpoint{Addr: netip.MustParseAddrPort("203.0.113.1:40000"), Encap: endpoint.EncapUDP}, stop)

	file := filepath.Join(t.TempDir(), "both.pcap")
	start := time.Now()
	_, errs, rc := cli(t, s, "capture", "-w", file, "--both", "--duration", "300ms")
	if rc != 0 {
		t.Fatalf("capture: exit %d: %s", rc, errs)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("--duration 300ms took %v", el)
	}
	_, ps := readPcap(t, file)
	var nInner, nOuter int
	for _, p := range ps {
		u, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if u == nil {
			t.Fatalf("no UDP layer:\n%s", p.Dump())
		}
		switch {
		case u.SrcPort == 1234:
			nInner++
			if !bytes.Equal(p.Data(), inner) {
				t.Error("inner packet changed")
			}
		case u.SrcPort == 4500 && u.DstPort == 40000:
			nOuter++
			if !bytes.Equal(u.Payload, espb) {
				t.Error("UDP payload is not the ESP packet")
			}
			// A valid UDP checksum over the pseudo-header.
			pl := p.Data()
			src, _ := netip.AddrFromSlice(pl[12:16])
			dst, _ := netip.AddrFromSlice(pl[16:20])
			if header.Checksum(pl[20:], header.PseudoHeaderChecksum(17, src, dst, len(pl)-20)) != 0xffff {
				t.Error("bad UDP checksum")
			}
		default:
			t.Errorf("unexpected packet:\n%s", p.Dump())
		}
	}
	if nInner == 0 || nOuter == 0 {
		t.Errorf("inner %d, outer %d packets; want both", nInner, nOuter)
	}
}
