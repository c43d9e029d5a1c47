package underlay_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/internal/testenv"
	"github.com/mipsec/mipsec/internal/testns"
	"github.com/mipsec/mipsec/pkt"
	"github.com/mipsec/mipsec/underlay"
)

// TestDFOnTheWire: the DF bit of the outer IPv4 header, as the peer
// namespace captures it (AF_PACKET, parsed here byte by byte, and again by
// tshark), is the one the SA's df rule gives (RFC 4301 §8.1; esp.DF), on
// every IPv4 send path: the raw ESP socket, ESP in UDP one packet per
// message and in GSO batches, and the AF_PACKET socket. Packets are sealed
// by esp in tunnel mode and cut in front of ESP as the dataplane does
// (dataplane/pipeline.go finishSeal). An SA with IPv6 tunnel endpoints
// sent to an IPv4 address (the mobility case, ARCHITECTURE.md DR-8) has no
// DF rule: DF set (underlay/outer.go frontDF).
func TestDFOnTheWire(t *testing.T) {
	p := testns.NewVethPair(t)
	// The AF_PACKET path needs the neighbour resolved: a permanent entry.
	if err := p.A.NL.NeighSet(&netlink.Neigh{
		LinkIndex: p.LinkA.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
		IP: p.B4.AsSlice(), HardwareAddr: p.LinkB.Attrs().HardwareAddr,
	}); err != nil {
		t.Fatalf("neighbour: %v", err)
	}
	capt := startDFCapture(t, p.B, "mvb")
	// A UDP socket on 4500 in b, so that ESP in UDP is not answered with
	// ICMP port unreachable.
	p.B.Do(t, func() {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: p.B4.AsSlice(), Port: endpoint.UDPEncapPort})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	})

	type inner uint8
	const (
		v4DF inner = iota
		v4NoDF
		v6
	)
	innerNames := []string{"v4-df", "v4-nodf", "v6"}
	rules := []esp.DF{esp.DFCopy, esp.DFSet, esp.DFClear}
	ruleNames := []string{"copy", "set", "clear"}
	paths := []struct {
		name  string
		cfg   underlay.Config
		encap endpoint.Encap
		n     int // packets per case, one Send
	}{
		{"raw", underlay.Config{Mode: underlay.ModeRaw}, endpoint.EncapRaw, 3},
		{"udp", underlay.Config{Mode: underlay.ModeUDP, DisableGSO: true}, endpoint.EncapUDP, 3},
		{"udp-gso", underlay.Config{Mode: underlay.ModeUDP}, endpoint.EncapUDP, 16},
		{"packet-socket", underlay.Config{Mode: underlay.ModeRaw, PacketSocket: true}, endpoint.EncapRaw, 3},
	}
	type want struct {
		name string
		df   bool
		n    int
	}
	wants := map[uint32]want{}
	spi := uint32(0x1000)
	for _, path := range paths {
		cfg := path.cfg
		cfg.IPv4 = p.A4
		u, err := underlay.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		p.A.Do(t, func() {
			if _, err = u.Open(); err != nil {
				t.Fatalf("%s: Open: %v", path.name, err)
			}
		})
		ep := endpoint.Endpoint{Addr: netip.AddrPortFrom(p.B4, 0), Encap: path.encap}
		if path.encap == endpoint.EncapUDP {
			ep.Addr = netip.AddrPortFrom(p.B4, endpoint.UDPEncapPort)
		}
		send := func(name string, o *esp.Outbound, in inner, cut int, df bool) {
			bufs := make([]*pkt.Buf, path.n)
			eps := make([]endpoint.Endpoint, path.n)
			for i := range bufs {
				b := pkt.Get()
				b.Set(innerPacket(in == v6, in == v4DF))
				if v := o.Seal(b); v != esp.OK {
					t.Fatalf("%s: Seal: %v", name, v)
				}
				b.TrimFront(cut) // the dataplane's cut in front of ESP
				bufs[i], eps[i] = b, ep
			}
			if err := u.Send(bufs, eps); err != nil {
				t.Errorf("%s: Send: %v", name, err)
			}
			for _, b := range bufs {
				pkt.Put(b)
			}
			wants[o.SPI()] = want{name, df, path.n}
		}
		for ri, rule := range rules {
			for in := v4DF; in <= v6; in++ {
				spi++
				o := outbound(t, spi, p.A4, p.B4, rule)
				df := rule == esp.DFSet || rule == esp.DFCopy && in == v4DF
				send(fmt.Sprintf("%s/%s/inner-%s", path.name, ruleNames[ri], innerNames[in]), o, in, header.IPv4MinHeaderLen, df)
			}
		}
		for in := v4DF; in <= v4NoDF; in++ {
			spi++
			o := outbound(t, spi, p.A6, netip.MustParseAddr("2001:db8::2"), esp.DFClear)
			send(fmt.Sprintf("%s/ipv6-template/inner-%s", path.name, innerNames[in]), o, in, header.IPv6HeaderLen, true)
		}
		if path.cfg.PacketSocket && u.Stats().TxPacketSocket.Load() == 0 {
			t.Errorf("%s: nothing went through the AF_PACKET socket (fallback %d)", path.name, u.Stats().TxPacketSocketFallback.Load())
		}
		if path.name == "udp-gso" {
			if gso, _ := u.Offloads(false); !gso {
				testenv.SkipOrFail(t, "kernel without UDP GSO")
			}
		}
		u.Close()
	}
	got := capt.stop(t, len(wants))

	for s, w := range wants {
		pk := got.bySPI[s]
		if len(pk) == 0 {
			t.Errorf("%s (SPI %#x): nothing captured", w.name, s)
			continue
		}
		ids := map[uint16]bool{}
		for _, c := range pk {
			if c.df != w.df {
				t.Errorf("%s (SPI %#x): DF = %v on the wire, want %v", w.name, s, c.df, w.df)
			}
			if !c.df {
				// RFC 6864 §4.1: a datagram that may be fragmented
				// needs an Identification of its own.
				if ids[c.id] {
					t.Errorf("%s (SPI %#x): DF clear, ID %d used twice", w.name, s, c.id)
				}
				ids[c.id] = true
			}
		}
	}

	// The same capture through an independent dissector.
	t.Run("tshark", func(t *testing.T) {
		tshark, err := exec.LookPath("tshark")
		if err != nil {
			testenv.SkipOrFail(t, "no tshark: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, tshark, "-n", "-r", got.pcap, "-Y", "esp and not icmp",
			"-T", "fields", "-E", "separator=,", "-e", "esp.spi", "-e", "ip.flags.df").CombinedOutput()
		if err != nil {
			t.Fatalf("tshark: %v\n%s", err, out)
		}
		seen := map[uint32]int{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Split(strings.TrimSpace(line), ",")
			if len(f) < 2 || !strings.HasPrefix(f[0], "0x") {
				continue // tshark's notes (running as root)
			}
			v, err := strconv.ParseUint(strings.TrimPrefix(f[0], "0x"), 16, 32)
			if err != nil {
				t.Fatalf("tshark line %q: %v", line, err)
			}
			w, ok := wants[uint32(v)]
			if !ok {
				continue
			}
			seen[uint32(v)]++
			if df := f[1] == "1" || f[1] == "True"; df != w.df {
				t.Errorf("tshark: %s (SPI %#x): ip.flags.df = %s, want %v", w.name, v, f[1], w.df)
			}
		}
		for s, w := range wants {
			if seen[s] == 0 {
				t.Errorf("tshark: %s (SPI %#x) not decoded as ESP", w.name, s)
			}
		}
	})
}

// outbound is a tunnel-mode SA from src to dst with the given DF rule.
func outbound(t *testing.T, spi uint32, src, dst netip.Addr, df esp.DF) *esp.Outbound {
	t.Helper()
	key := make([]byte, esp.AES128GCM16.EncKeyLen())
	key[0] = byte(spi)
	o, err := esp.NewOutbound(esp.Params{
		SPI: spi, Algorithm: esp.AES128GCM16, EncKey: key, Mode: esp.Tunnel,
		TunnelSrc: src, TunnelDst: dst, DF: df,
	})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// innerPacket is a 200-byte IPv4 (with or without DF) or IPv6 packet as a
// TUN would hand it over (documentation addresses).
func innerPacket(v6, df bool) []byte {
	const n = 200
	p := make([]byte, n)
	if v6 {
		header.IPv6(p).Encode(&header.IPv6Fields{
			PayloadLen: n - header.IPv6HeaderLen, NextHeader: header.ProtoNoNext, HopLimit: 64,
			Src: netip.MustParseAddr("2001:db8:1::1"), Dst: netip.MustParseAddr("2001:db8:2::1"),
		})
		return p
	}
	var flags uint16
	if df {
		flags = header.IPv4FlagDF
	}
	header.IPv4(p).Encode(&header.IPv4Fields{
		TotalLen: n, ID: 7, Flags: flags, TTL: 64, Protocol: header.ProtoUDP,
		Src: netip.MustParseAddr("198.51.100.1"), Dst: netip.MustParseAddr("203.0.113.1"),
	})
	return p
}

// dfCapture reads every frame on a device with an AF_PACKET socket and
// writes them to a pcap file.
type dfCapture struct {
	fd   int
	pcap *os.File
	done chan struct{}
	quit chan struct{}
	mu   sync.Mutex
	seen dfSeen
}

type dfPacket struct {
	df bool
	id uint16
}

type dfSeen struct {
	bySPI map[uint32][]dfPacket
	pcap  string
}

func startDFCapture(t *testing.T, ns *testns.NS, dev string) *dfCapture {
	t.Helper()
	c := &dfCapture{fd: -1, done: make(chan struct{}), quit: make(chan struct{})}
	c.seen.bySPI = map[uint32][]dfPacket{}
	c.seen.pcap = filepath.Join(t.TempDir(), "df.pcap")
	f, err := os.Create(c.seen.pcap)
	if err != nil {
		t.Fatal(err)
	}
	c.pcap = f
	// pcap global header: version 2.4, snaplen 65535, LINKTYPE_ETHERNET.
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 65535)
	binary.LittleEndian.PutUint32(h[20:], 1)
	if _, err := f.Write(h[:]); err != nil {
		t.Fatal(err)
	}
	ns.Do(t, func() {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			t.Fatal(err)
		}
		proto := int(htons(unix.ETH_P_ALL))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			t.Fatal(err)
		}
		c.fd = fd
		tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			t.Fatal(err)
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() {
		select {
		case <-c.quit:
		default:
			close(c.quit)
		}
		<-c.done
		unix.Close(c.fd)
		c.pcap.Close()
	})
	go c.loop()
	return c
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (c *dfCapture) loop() {
	defer close(c.done)
	b := make([]byte, 1<<16)
	for {
		select {
		case <-c.quit:
			return
		default:
		}
		n, _, err := unix.Recvfrom(c.fd, b, unix.MSG_TRUNC)
		if err != nil || n <= 0 {
			continue
		}
		n = min(n, len(b))
		c.add(b[:n])
	}
}

// add records one Ethernet frame: pcap record, and for IPv4 ESP (raw or
// in UDP 4500) the SPI with DF and ID, read from the bytes (RFC 791 §3.1,
// RFC 768, RFC 3948 §2.1, RFC 4303 §2.1).
func (c *dfCapture) add(f []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var rec [16]byte
	now := time.Now()
	binary.LittleEndian.PutUint32(rec[0:], uint32(now.Unix()))
	binary.LittleEndian.PutUint32(rec[4:], uint32(now.Nanosecond()/1000))
	binary.LittleEndian.PutUint32(rec[8:], uint32(len(f)))
	binary.LittleEndian.PutUint32(rec[12:], uint32(len(f)))
	c.pcap.Write(rec[:])
	c.pcap.Write(f)

	if len(f) < 14+20 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
		return
	}
	ip := f[14:]
	if ip[0]>>4 != 4 {
		return
	}
	ihl := int(ip[0]&0xf) * 4
	flags := binary.BigEndian.Uint16(ip[6:])
	if flags&0x1fff != 0 || len(ip) < ihl+16 {
		return // not a first fragment: no SPI
	}
	l4 := ip[ihl:]
	switch ip[9] {
	case 50:
	case 17:
		if binary.BigEndian.Uint16(l4[2:]) != endpoint.UDPEncapPort {
			return
		}
		l4 = l4[8:]
	default:
		return
	}
	spi := binary.BigEndian.Uint32(l4)
	c.seen.bySPI[spi] = append(c.seen.bySPI[spi], dfPacket{df: flags&0x4000 != 0, id: binary.BigEndian.Uint16(ip[4:])})
}

// stop waits for the last frames (until wantSPIs SPIs were seen, or 5 s
// on a loaded machine, then 100 ms more for stragglers), stops the capture
// and returns it.
func (c *dfCapture) stop(t *testing.T, wantSPIs int) dfSeen {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		c.mu.Lock()
		n := len(c.seen.bySPI)
		c.mu.Unlock()
		if n >= wantSPIs {
			break
		}
	}
	time.Sleep(100 * time.Millisecond)
	close(c.quit)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.pcap.Sync(); err != nil {
		t.Fatal(err)
	}
	return c.seen
}
