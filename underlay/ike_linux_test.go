package underlay

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/internal/testns"
	"github.com/mipsec/mipsec/pkt"
)

type ikeMsg struct {
	msg           []byte
	local, remote netip.AddrPort
}

// runAll calls every ReceiveFunc in a loop and sends what they return on
// the channel, until the underlay closes.
func runAll(t *testing.T, u *Linux, fns []ReceiveFunc) <-chan received {
	t.Helper()
	out := make(chan received, 64)
	for _, fn := range fns {
		go func() {
			bufs := make([]*pkt.Buf, u.BatchSize())
			for i := range bufs {
				bufs[i] = pkt.Get()
			}
			eps := make([]endpoint.Endpoint, len(bufs))
			for {
				n, err := fn(bufs, eps)
				if err != nil {
					if !errors.Is(err, net.ErrClosed) {
						t.Errorf("receive: %v", err)
					}
					return
				}
				for i := range n {
					out <- received{bytes.Clone(bufs[i].Bytes()), eps[i]}
				}
			}
		}()
	}
	return out
}

// TestUnderlayIKE: IKE messages to UDP 500 and, behind the non-ESP marker,
// to 4500 reach Config.IKE without the marker, with the datagram's real
// destination as local (IP_PKTINFO / IPV6_PKTINFO on the wildcard socket)
// and the sender as remote; ESP on 4500 still reaches the ReceiveFunc;
// SendIKE sends from 500 as is and from 4500 with the marker, from the
// local address it is given.
func TestUnderlayIKE(t *testing.T) {
	p := testns.NewVethPair(t)
	// A second address on B: the destination, not the first address,
	// must be what IKE sees.
	b4x, b6x := netip.MustParseAddr("192.0.2.3"), netip.MustParseAddr("2001:db8::3")
	p.B.AddAddr(t, p.LinkB, netip.PrefixFrom(b4x, 24))
	p.B.AddAddr(t, p.LinkB, netip.PrefixFrom(b6x, 64))
	p.Settle(t)
	for _, gro := range []bool{true, false} {
		t.Run(fmt.Sprintf("gro=%v", gro), func(t *testing.T) {
			got := make(chan ikeMsg, 64)
			cfg := Config{IPv4: netip.IPv4Unspecified(), IPv6: netip.IPv6Unspecified(), Mode: ModeUDP, IKE500: true,
				DisableGRO: !gro,
				IKE: func(msg []byte, local, remote netip.AddrPort) {
					got <- ikeMsg{bytes.Clone(msg), local, remote}
				}}
			ub, fns := openUnderlay(t, p.B, cfg)
			if len(fns) != 4 {
				t.Fatalf("Open returned %d ReceiveFuncs, want 4 (udp4, udp6, ike4, ike6)", len(fns))
			}
			esp := runAll(t, ub, fns)
			for _, v6 := range []bool{false, true} {
				a, b := p.A4, b4x
				if v6 {
					a, b = p.A6, b6x
				}
				// Plain UDP sockets in A: a high port, and 500.
				var pa, pa500 *net.UDPConn
				p.A.Do(t, func() {
					var err error
					if pa, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0))); err != nil {
						t.Fatal(err)
					}
					if pa500, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, IKEPort))); err != nil {
						t.Fatal(err)
					}
				})
				defer pa.Close()
				defer pa500.Close()
				from := pa.LocalAddr().(*net.UDPAddr).AddrPort()
				from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
				ike := []byte("IKE_SA_INIT with a 28-byte header and more")

				// To 4500 behind the marker; then ESP; then to 500.
				send := func(payload []byte, port uint16) {
					t.Helper()
					if _, err := pa.WriteToUDPAddrPort(payload, netip.AddrPortFrom(b, port)); err != nil {
						t.Fatal(err)
					}
				}
				send(append([]byte{0, 0, 0, 0}, ike...), endpoint.UDPEncapPort)
				expectIKE(t, got, ikeMsg{ike, netip.AddrPortFrom(b, endpoint.UDPEncapPort), from})
				espPkt := fakeESP(0x1234, 1, 80)
				send(espPkt, endpoint.UDPEncapPort)
				select {
				case r := <-esp:
					if !bytes.Equal(r.p, espPkt) || r.ep != (endpoint.Endpoint{Addr: from, Encap: endpoint.EncapUDP}) {
						t.Errorf("ESP on 4500: %x from %v", r.p, r.ep)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("ESP on 4500 not returned")
				}
				send(ike, IKEPort)
				expectIKE(t, got, ikeMsg{ike, netip.AddrPortFrom(b, IKEPort), from})
				// The marker alone is an empty IKE message, not ESP.
				send([]byte{0, 0, 0, 0}, endpoint.UDPEncapPort)
				expectIKE(t, got, ikeMsg{[]byte{}, netip.AddrPortFrom(b, endpoint.UDPEncapPort), from})

				// SendIKE: from 500 as is, from 4500 with the marker, from
				// the second address; local port 0 to remote 500 is 500.
				recv := func(c *net.UDPConn, want []byte, wantFrom netip.AddrPort) {
					t.Helper()
					buf := make([]byte, 2048)
					c.SetReadDeadline(time.Now().Add(5 * time.Second))
					n, src, err := c.ReadFromUDPAddrPort(buf)
					if err != nil {
						t.Fatalf("%v: %v", c.LocalAddr(), err)
					}
					src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
					if !bytes.Equal(buf[:n], want) || src != wantFrom {
						t.Errorf("%v got %q from %v, want %q from %v", c.LocalAddr(), buf[:n], src, want, wantFrom)
					}
				}
				if err := ub.SendIKE(ike, netip.AddrPortFrom(b, IKEPort), from); err != nil {
					t.Fatal(err)
				}
				recv(pa, ike, netip.AddrPortFrom(b, IKEPort))
				if err := ub.SendIKE(ike, netip.AddrPortFrom(b, endpoint.UDPEncapPort), from); err != nil {
					t.Fatal(err)
				}
				recv(pa, append([]byte{0, 0, 0, 0}, ike...), netip.AddrPortFrom(b, endpoint.UDPEncapPort))
				to500 := netip.AddrPortFrom(a, IKEPort)
				if err := ub.SendIKE(ike, netip.AddrPortFrom(b, 0), to500); err != nil {
					t.Fatal(err)
				}
				recv(pa500, ike, netip.AddrPortFrom(b, IKEPort))
				// Hostile or wrong arguments: an error, nothing sent.
				for _, bad := range [][2]netip.AddrPort{
					{netip.AddrPortFrom(b, IKEPort), {}},
					{netip.AddrPortFrom(b, IKEPort), netip.AddrPortFrom(a, 0)},
					{netip.AddrPortFrom(p.A4, IKEPort), netip.AddrPortFrom(p.A6, 500)},
				} {
					if err := ub.SendIKE(ike, bad[0], bad[1]); err == nil {
						t.Errorf("SendIKE(%v, %v) sent", bad[0], bad[1])
					}
				}
			}
			// The receive path adds a batch's counts after its callbacks
			// returned, so the last one may still be on its way.
			st := ub.Stats()
			for deadline := time.Now().Add(5 * time.Second); st.RxIKE.Load() < 6 && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			if st.RxIKE.Load() != 6 || st.TxIKE.Load() != 6 || st.RxNonESP.Load() != 0 {
				t.Errorf("rx_ike %d tx_ike %d rx_non_esp %d, want 6, 6, 0", st.RxIKE.Load(), st.TxIKE.Load(), st.RxNonESP.Load())
			}
			select {
			case r := <-esp:
				t.Errorf("returned as ESP: %x", r.p)
			default:
			}
		})
	}
}

func expectIKE(t *testing.T, got <-chan ikeMsg, want ikeMsg) {
	t.Helper()
	select {
	case m := <-got:
		if !bytes.Equal(m.msg, want.msg) || m.local != want.local || m.remote != want.remote {
			t.Errorf("IKE %q on %v from %v, want %q on %v from %v", m.msg, m.local, m.remote, want.msg, want.local, want.remote)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("IKE message for %v not handed over", want.local)
	}
}

// TestUnderlayIKEBound: bound to one address, local is that address and
// SendIKE without IKE500 has no port 500 to send from. IKE500 without a
// callback is refused.
func TestUnderlayIKEBound(t *testing.T) {
	if _, err := New(Config{IPv4: netip.IPv4Unspecified(), IKE500: true}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("IKE500 without IKE: %v", err)
	}
	p := testns.NewVethPair(t)
	got := make(chan ikeMsg, 4)
	ub, fns := openUnderlay(t, p.B, Config{IPv4: p.B4, Mode: ModeUDP, IKE: func(msg []byte, local, remote netip.AddrPort) {
		got <- ikeMsg{bytes.Clone(msg), local, remote}
	}})
	runAll(t, ub, fns)
	var pa *net.UDPConn
	p.A.Do(t, func() {
		var err error
		if pa, err = net.ListenUDP("udp4", &net.UDPAddr{IP: p.A4.AsSlice()}); err != nil {
			t.Fatal(err)
		}
	})
	defer pa.Close()
	from := pa.LocalAddr().(*net.UDPAddr).AddrPort()
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	if _, err := pa.WriteToUDPAddrPort([]byte{0, 0, 0, 0, 'i', 'k', 'e'}, netip.AddrPortFrom(p.B4, 4500)); err != nil {
		t.Fatal(err)
	}
	expectIKE(t, got, ikeMsg{[]byte("ike"), netip.AddrPortFrom(p.B4, 4500), from})
	if err := ub.SendIKE([]byte("x"), netip.AddrPortFrom(p.B4, 500), from); !errors.Is(err, ErrNoSocket) {
		t.Errorf("SendIKE from 500 without IKE500: %v", err)
	}
	ub.Close()
	if err := ub.SendIKE([]byte("x"), netip.AddrPortFrom(p.B4, 4500), from); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SendIKE after Close: %v", err)
	}
}
