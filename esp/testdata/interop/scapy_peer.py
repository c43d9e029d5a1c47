#!/usr/bin/python3
"""ESP peer for esp/interop_test.go, built on scapy.layers.ipsec.

Run with Debian's /usr/bin/python3 (python3-scapy, tested with scapy 2.5.0).
Protocol: the first stdout line is {"scapy": version}, or {"missing": why}
when scapy or python3-cryptography cannot be imported. Then each stdin line
is a JSON list of tasks, answered by one stdout line: the JSON list of
results, in order. Byte strings are hex.

  {"id": s, "op": "seal", "sa": SA, "seq": n, "build": BUILD}
      -> {"id": s, "plain": hex, "sealed": hex}
      scapy builds the packet BUILD and seals it with sequence number n
      (64 bits; the high half goes to scapy's esn when SA.esn is set).
  {"id": s, "op": "open", "sa": SA, "packet": hex, "seq_hi": n}
      -> {"id": s, "plain": hex, "nh": ESP next header (tunnel mode only)}
      scapy checks and decrypts the ESP packet; with ESN it cannot infer
      the high 32 bits of the sequence number, so seq_hi supplies them.
  Any failure -> {"id": s, "error": "..."}.

  SA    = {"spi", "crypt", "crypt_key", "auth", "auth_key", "esn",
           "tunnel": null | {"src", "dst"}}   (scapy algorithm names)
  BUILD = {"kind": "udp", "family": 4|6, "size": payload bytes}
        | {"kind": "mh-hao"}   IPv6 / DestOpt(HAO) / MH Binding Update
"""

import hashlib
import json
import struct
import sys

try:
    import scapy
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from scapy.compat import raw
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import HAO, IPv6, IPv6ExtHdrDestOpt, MIP6MH_BU
    from scapy.layers.ipsec import (CRYPT_ALGOS, ESP, CryptAlgo,
                                    IPSecIntegrityError, SecurityAssociation,
                                    _ESPPlain)
    from scapy.packet import Raw
except ImportError as err:
    # the Go test skips (or fails in CI) on this answer
    print(json.dumps({'missing': str(err)}), flush=True)
    sys.exit(0)


class GMAC(CryptAlgo):
    """AES-GMAC ESP (RFC 4543, ENCR_NULL_AUTH_AES_GMAC), which scapy lacks.

    A shim on scapy's CryptAlgo interface so that scapy still does the
    framing (header, padding, transport split, tunnel): the payload stays in
    clear and the 16-byte GCM tag over SPI || [ESN high] || seq || IV ||
    payload is the ICV; the nonce is salt || IV as for AES-GCM.
    """

    def __init__(self):
        CryptAlgo.__init__(self, 'AES-NULL-GMAC', cipher=None, mode=None,
                           block_size=1, iv_size=8, key_size=(16, 32),
                           icv_size=16, salt_size=4)

    @staticmethod
    def _aad(esp, esn_en, esn, iv, data):
        hdr = struct.pack('!LLL', esp.spi, esn, esp.seq) if esn_en \
            else struct.pack('!LL', esp.spi, esp.seq)
        return hdr + iv + data

    def encrypt(self, sa, esp, key, icv_size=None, esn_en=False, esn=0):
        data = esp.data_for_encryption()
        tag = AESGCM(key).encrypt(sa.crypt_salt + esp.iv, b'',
                                  self._aad(esp, esn_en, esn, esp.iv, data))
        return ESP(spi=esp.spi, seq=esp.seq, data=esp.iv + data + tag)

    def decrypt(self, sa, esp, key, icv_size=None, esn_en=False, esn=0):
        iv, data, icv = esp.data[:8], esp.data[8:-16], esp.data[-16:]
        try:
            AESGCM(key).decrypt(sa.crypt_salt + iv, icv,
                                self._aad(esp, esn_en, esn, iv, data))
        except InvalidTag as err:
            raise IPSecIntegrityError(err)
        padlen, nh = data[-2], data[-1]
        return _ESPPlain(spi=esp.spi, seq=esp.seq, iv=iv,
                         data=data[:len(data) - padlen - 2],
                         padlen=padlen, nh=nh, icv=icv)


CRYPT_ALGOS['AES-NULL-GMAC'] = GMAC()


class ESNAuth(object):
    """Wraps a scapy AuthAlgo to add ESN to ESP integrity.

    scapy 2.5.0 passes esn only to AEAD ciphers and to AH: for ESP with an
    HMAC its ICV covers SPI, seq and payload but not the high 32 bits of
    the sequence number that RFC 4303 §2.2.1 appends (unsent) to the ICV
    input. SecurityAssociation uses only sign, verify and icv_size of its
    auth_algo.
    """

    def __init__(self, algo, hi):
        self.algo, self.hi, self.icv_size = algo, hi, algo.icv_size

    def _icv(self, esp, key):
        mac = self.algo.new_mac(key)
        mac.update(raw(esp) + struct.pack('!L', self.hi))
        return mac.finalize()[:self.icv_size]

    def sign(self, esp, key, **kw):
        esp[ESP].data += self._icv(esp[ESP], key)
        return esp

    def verify(self, esp, key, **kw):
        clone = esp.copy()
        clone.data = esp.data[:-self.icv_size]
        if self._icv(clone, key) != esp.data[-self.icv_size:]:
            raise IPSecIntegrityError('ESN ICV mismatch')


def make_sa(sa, seq=0):
    hi, lo = seq >> 32, seq & 0xffffffff
    tunnel = None
    if sa['tunnel']:
        t = sa['tunnel']
        tunnel = (IPv6 if ':' in t['src'] else IP)(src=t['src'], dst=t['dst'])
    # seq_num and esn go to the constructor: encrypt(seq_num=0) or esn=0
    # would fall back to the SA's own values ("seq_num or self.seq_num").
    s = SecurityAssociation(
        ESP, spi=sa['spi'], seq_num=lo,
        crypt_algo=sa['crypt'], crypt_key=bytes.fromhex(sa['crypt_key']),
        auth_algo=sa['auth'],
        auth_key=bytes.fromhex(sa['auth_key']) if sa['auth'] else None,
        tunnel_header=tunnel, esn_en=sa['esn'], esn=hi)
    if sa['esn'] and sa['auth']:
        s.auth_algo = ESNAuth(s.auth_algo, hi)
    return s


def build(b):
    if b['kind'] == 'mh-hao':
        # Mobile IPv6 Binding Update from a care-of address (RFC 6275 §6.1.7)
        return IPv6(src='2001:db8:c0a::5', dst='2001:db8:a::1') / \
            IPv6ExtHdrDestOpt(options=[HAO(hoa='2001:db8:1::5')]) / \
            MIP6MH_BU(seq=7, flags='AH', mhtime=100)
    # non-zero DSCP (ECN 0), DF, ID and flow label: the inner header must
    # come out of either engine unchanged
    body = UDP(sport=4321, dport=9) / Raw((bytes(range(256)) * 6)[:b['size']])
    if b['family'] == 4:
        return IP(src='192.0.2.1', dst='198.51.100.2', tos=0x28, id=0x1234,
                  flags='DF') / body
    return IPv6(src='2001:db8:1::1', dst='2001:db8:2::2', tc=0x28,
                fl=0x12345) / body


def parse(data):
    return (IP if data[0] >> 4 == 4 else IPv6)(data)


def run(task):
    sa = task['sa']
    if task['op'] == 'seal':
        plain = raw(build(task['build']))
        s = make_sa(sa, task['seq'])
        # deterministic IV, unrelated to the sequence number (mipsec uses
        # seq as AEAD IV; the receiver must not assume that)
        iv = hashlib.sha256(task['id'].encode()).digest()
        iv = iv[:s.crypt_algo.iv_size]
        sealed = raw(s.encrypt(parse(plain), iv=iv))
        return {'plain': plain.hex(), 'sealed': sealed.hex()}
    if task['op'] == 'open':
        pkt = parse(bytes.fromhex(task['packet']))
        seq = (task.get('seq_hi', 0) << 32) | pkt[ESP].seq
        r = {'plain': raw(make_sa(sa, seq).decrypt(pkt)).hex()}
        if sa['tunnel']:
            # tunnel-mode decrypt leaves the ESP Next Header in the outer
            # header it strips (pkt); the inner bytes do not show it
            r['nh'] = pkt.proto if pkt.version == 4 else pkt.nh
        return r
    raise ValueError('unknown op %r' % task['op'])


def main():
    print(json.dumps({'scapy': scapy.VERSION}), flush=True)
    for line in sys.stdin:
        out = []
        for task in json.loads(line):
            try:
                r = run(task)
            except Exception as err:  # report per task, keep going
                r = {'error': '%s: %s' % (type(err).__name__, err)}
            r['id'] = task['id']
            out.append(r)
        sys.stdout.write(json.dumps(out) + '\n')
        sys.stdout.flush()


if __name__ == '__main__':
    main()
