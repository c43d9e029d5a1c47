#!/usr/bin/python3
"""An independent ESP peer for the e2e interop test: scapy's
SecurityAssociation plays gateway B (outer 198.51.100.2, site 192.0.2.129)
against a running `mipsec run` gateway A (outer 198.51.100.1, site
192.0.2.1), with raw ESP (IP protocol 50) over IPv4, tunnel mode. Family 4: inner
IPv4, AES-128-GCM (SPIs 0xa001 out, 0xb001 in; keys are hex AES-128 key +
4-byte salt, RFC 4106). Family 6: inner IPv6 (2001:db8:b::1 <->
2001:db8:a::1), AES-128-CBC + HMAC-SHA-256-128 (SPIs 0xa006, 0xb006; keys
KEY:AUTHKEY in hex).

  scapy_peer.py initiate IFACE FAMILY FIRST_SEQ KEY_OUT KEY_IN
      scapy sends encrypted ICMP echo requests from B's site to A's and
      waits for mipsec's encrypted replies, which it decrypts and checks.
  scapy_peer.py respond IFACE FAMILY FIRST_SEQ KEY_OUT KEY_IN COUNT
      scapy decrypts COUNT echo requests that mipsec encrypted (a ping from
      A's site) and answers each one through its own SA.

Prints one line per event; exits 0 on success.
"""
import sys
import time

from scapy.all import AsyncSniffer, IP, IPv6, ICMP, ICMPv6EchoReply, ICMPv6EchoRequest, conf, send, sniff
from scapy.layers.ipsec import ESP, SecurityAssociation

conf.verb = 0
OUTER_A, OUTER_B = "198.51.100.1", "198.51.100.2"
FAMILY = 4
SITE_A, SITE_B = "192.0.2.1", "192.0.2.129"
SPI_OUT, SPI_IN = 0x0000A001, 0x0000B001


def setup(family):
    global FAMILY, SITE_A, SITE_B, SPI_OUT, SPI_IN
    FAMILY = family
    if family == 6:
        SITE_A, SITE_B = "2001:db8:a::1", "2001:db8:b::1"
        SPI_OUT, SPI_IN = 0x0000A006, 0x0000B006


def sa(spi, key, src, dst):
    if FAMILY == 4:
        return SecurityAssociation(ESP, spi=spi, crypt_algo="AES-GCM", crypt_key=bytes.fromhex(key),
                                   tunnel_header=IP(src=src, dst=dst))
    enc, auth = key.split(":")
    return SecurityAssociation(ESP, spi=spi, crypt_algo="AES-CBC", crypt_key=bytes.fromhex(enc),
                               auth_algo="SHA2-256-128", auth_key=bytes.fromhex(auth),
                               tunnel_header=IP(src=src, dst=dst))


def sas(key_out, key_in, first_seq):
    out = sa(SPI_OUT, key_out, OUTER_B, OUTER_A)
    out.seq_num = first_seq
    return out, sa(SPI_IN, key_in, OUTER_A, OUTER_B)


def from_mipsec(p):
    return IP in p and p[IP].proto == 50 and p[IP].src == OUTER_A and ESP in p and p[ESP].spi == SPI_IN


def echo(src, dst, request, ident, seq, data):
    if FAMILY == 4:
        return IP(src=src, dst=dst) / ICMP(type=8 if request else 0, id=ident, seq=seq) / data
    layer = ICMPv6EchoRequest if request else ICMPv6EchoReply
    return IPv6(src=src, dst=dst) / layer(id=ident, seq=seq, data=data)


def parse_echo(inner):
    """Returns (is_request, id, seq, data) of an ICMP echo, or None."""
    if FAMILY == 4:
        if ICMP in inner and inner[ICMP].type in (0, 8):
            i = inner[ICMP]
            return i.type == 8, i.id, i.seq, bytes(i.payload)
        return None
    for layer, req in ((ICMPv6EchoRequest, True), (ICMPv6EchoReply, False)):
        if layer in inner:
            i = inner[layer]
            return req, i.id, i.seq, bytes(i.data)
    return None


def open_esp(inb, p):
    """Decrypts p (a copy: decrypt changes its argument); returns the
    inner packet and the ESP sequence number."""
    outer = IP(bytes(p[IP]))
    seq = outer[ESP].seq
    inner = inb.decrypt(outer)
    inner = (IP if FAMILY == 4 else IPv6)(bytes(inner))
    return inner, seq


def initiate(iface, first_seq, key_out, key_in):
    out, inb = sas(key_out, key_in, first_seq)
    ident, count, got = 0x5CA9, 3, 0
    for seq in range(1, count + 1):
        sn = AsyncSniffer(iface=iface, lfilter=from_mipsec, count=1, timeout=3)
        sn.start()
        time.sleep(0.3)
        req = echo(SITE_B, SITE_A, True, ident, seq, b"scapy interop")
        send(out.encrypt(req), iface=iface)
        print("scapy -> mipsec: echo request seq %d sent in ESP seq %d" % (seq, out.seq_num - 1), flush=True)
        sn.join()
        for p in sn.results or []:
            inner, esp_seq = open_esp(inb, p)
            print("mipsec -> scapy: ESP seq %d decrypted: %s" % (esp_seq, inner.summary()), flush=True)
            e = parse_echo(inner)
            if e and not e[0] and e[1] == ident and e[2] == seq and inner.src == SITE_A and inner.dst == SITE_B:
                got += 1
    print("initiate: %d of %d echo replies through mipsec" % (got, count), flush=True)
    return 0 if got == count else 1


def respond(iface, first_seq, key_out, key_in, count):
    out, inb = sas(key_out, key_in, first_seq)
    answered = 0

    def handle(p):
        nonlocal answered
        inner, esp_seq = open_esp(inb, p)
        print("mipsec -> scapy: ESP seq %d decrypted: %s" % (esp_seq, inner.summary()), flush=True)
        e = parse_echo(inner)
        if e and e[0] and inner.dst == SITE_B:
            rep = echo(SITE_B, inner.src, False, e[1], e[2], e[3])
            send(out.encrypt(rep), iface=iface)
            print("scapy -> mipsec: echo reply seq %d sent in ESP seq %d" % (e[2], out.seq_num - 1), flush=True)
            answered += 1

    print("respond: ready", flush=True)
    sniff(iface=iface, lfilter=from_mipsec, prn=handle, stop_filter=lambda p: answered >= count, timeout=20)
    print("respond: answered %d of %d" % (answered, count), flush=True)
    return 0 if answered >= count else 1


if __name__ == "__main__":
    mode, iface = sys.argv[1], sys.argv[2]
    setup(int(sys.argv[3]))
    first_seq, key_out, key_in = int(sys.argv[4]), sys.argv[5], sys.argv[6]
    if mode == "initiate":
        sys.exit(initiate(iface, first_seq, key_out, key_in))
    sys.exit(respond(iface, first_seq, key_out, key_in, int(sys.argv[7])))
