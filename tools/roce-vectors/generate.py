#!/usr/bin/env python3
"""Golden RoCEv2 vectors for RoCEWire's tests, built with scapy — not with RoCEWire.

Packets are assembled from scapy's own layers (IP, IPv6, UDP, and from scapy.contrib.roce:
BTH, AETH, the CNP helper); scapy computes every ICRC (BTH.post_build). The extension
headers scapy does not define (DETH, RETH, AtomicETH, AtomicAckETH, ImmDt, IETH) are packed
with struct into the payload that follows the BTH, and the pad is appended the same way.

Each ICRC is also recomputed here the way Linux rxe does it (drivers/infiniband/sw/rxe/
rxe_icrc.c: raw crc32_le from the seed 0xdebb20e3 over the masked IP/UDP/BTH copy, then
the rest, then inverted), and the script fails if scapy and that computation disagree.

Usage: tools/roce-vectors/generate.py [output.json]
Needs scapy (pip install scapy); tools/roce-vectors/run makes a venv under .cache/.
"""
import json
import os
import random
import struct
import sys
import zlib

from scapy.compat import raw
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw
from scapy.contrib import roce
from scapy.contrib.roce import AETH, BTH, CNPPadding

ROCE_PORT = 4791

# Extension headers after the BTH, by the low five bits of the opcode (IBTA Vol 1 §9.2,
# rxe_opcode.c), in wire order. "payload" says whether the opcode carries data.
OPERATIONS = {
    0x00: ("SEND_FIRST", [], True),
    0x01: ("SEND_MIDDLE", [], True),
    0x02: ("SEND_LAST", [], True),
    0x03: ("SEND_LAST_WITH_IMMEDIATE", ["imm"], True),
    0x04: ("SEND_ONLY", [], True),
    0x05: ("SEND_ONLY_WITH_IMMEDIATE", ["imm"], True),
    0x06: ("RDMA_WRITE_FIRST", ["reth"], True),
    0x07: ("RDMA_WRITE_MIDDLE", [], True),
    0x08: ("RDMA_WRITE_LAST", [], True),
    0x09: ("RDMA_WRITE_LAST_WITH_IMMEDIATE", ["imm"], True),
    0x0A: ("RDMA_WRITE_ONLY", ["reth"], True),
    0x0B: ("RDMA_WRITE_ONLY_WITH_IMMEDIATE", ["reth", "imm"], True),
    0x0C: ("RDMA_READ_REQUEST", ["reth"], False),
    0x0D: ("RDMA_READ_RESPONSE_FIRST", ["aeth"], True),
    0x0E: ("RDMA_READ_RESPONSE_MIDDLE", [], True),
    0x0F: ("RDMA_READ_RESPONSE_LAST", ["aeth"], True),
    0x10: ("RDMA_READ_RESPONSE_ONLY", ["aeth"], True),
    0x11: ("ACKNOWLEDGE", ["aeth"], False),
    0x12: ("ATOMIC_ACKNOWLEDGE", ["aeth", "atomic_ack"], False),
    0x13: ("COMPARE_SWAP", ["atomic"], False),
    0x14: ("FETCH_ADD", ["atomic"], False),
    0x16: ("SEND_LAST_WITH_INVALIDATE", ["ieth"], True),
    0x17: ("SEND_ONLY_WITH_INVALIDATE", ["ieth"], True),
}
RC_OPS = sorted(OPERATIONS)
UC_OPS = list(range(0x00, 0x0C))
UD_OPS = [0x04, 0x05]
CNP_OPCODE = roce.CNP_OPCODE

AETH_SYNDROMES = [0x1F, 0x00, 0x05, 0x2E, 0x60, 0x61, 0x62, 0x63]


def rxe_style_icrc(ip_packet):
    """ICRC as rxe_icrc.c computes it, from the bytes alone (independent of scapy)."""
    data = bytearray(ip_packet)
    version = data[0] >> 4
    if version == 4:
        ihl = (data[0] & 0x0F) * 4
        data[1] = 0xFF                      # TOS
        data[8] = 0xFF                      # TTL
        data[10:12] = b"\xff\xff"           # header checksum
        udp = ihl
    else:
        data[0] |= 0x0F                     # traffic class, high nibble
        data[1:4] = b"\xff\xff\xff"         # traffic class low nibble + flow label
        data[7] = 0xFF                      # hop limit
        udp = 40
    data[udp + 6:udp + 8] = b"\xff\xff"     # UDP checksum
    bth = udp + 8
    data[bth + 4] = 0xFF                    # FECN, BECN, reserved
    # Linux crc32_le has no pre/post inversion; zlib's crc32 has both, so convert.
    def crc32_le(state, chunk):
        return ~zlib.crc32(bytes(chunk), ~state & 0xFFFFFFFF) & 0xFFFFFFFF
    crc = crc32_le(0xDEBB20E3, data[:len(data) - 4])
    return ~crc & 0xFFFFFFFF


class Builder:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.count = 0

    def u(self, bits):
        return self.rng.getrandbits(bits)

    def network(self, ip_version):
        """An IP header in one of the shapes the engine meets, with the maskable fields
        randomised (the ICRC must not depend on them)."""
        r = self.rng
        sport = 0xC000 | self.u(14)
        if ip_version == 4:
            src = "10.%d.%d.%d" % (self.u(8), self.u(8), 1 + self.u(7))
            dst = "192.168.%d.%d" % (self.u(8), 1 + self.u(7))
            # Half like a UDP-socket sender (ID 0, DF), half like rxe (non-zero ID, DF).
            ident = 0 if self.count % 2 == 0 else 1 + self.u(15)
            ip = IP(src=src, dst=dst, id=ident, flags="DF", tos=r.choice([0, 0x02, 0x03, 0x68, 0xFF]),
                    ttl=r.choice([1, 64, 255]))
            info = {"src": src, "dst": dst, "id": ident, "flags_frag": 0x4000}
        else:
            src = "fd00::%x:%x" % (self.u(16), 1 + self.u(15))
            dst = "2001:db8::%x" % (1 + self.u(15))
            if self.count % 3 == 0:          # IPv4-mapped, like a RoCEv2 GID for IPv4
                src = "::ffff:10.0.%d.%d" % (self.u(8), 1 + self.u(7))
            ip = IPv6(src=src, dst=dst, tc=r.choice([0, 0x03, 0x68, 0xFF]), fl=self.u(20),
                      hlim=r.choice([1, 64, 255]))
            info = {"src": src, "dst": dst, "id": None, "flags_frag": None}
        # rxe sends UDP checksum 0; let scapy fill a real one in some packets (it is masked).
        udp = UDP(sport=sport, dport=ROCE_PORT, chksum=0 if self.count % 2 == 0 else None)
        info.update({"sport": sport, "dport": ROCE_PORT})
        return ip, udp, info

    def vector(self, opcode, ip_version, payload_len):
        self.count += 1
        ip, udp, net = self.network(ip_version)
        transport = opcode >> 5
        operation = opcode & 0x1F
        expected = {"deth": None, "reth": None, "atomic_eth": None, "aeth": None,
                    "atomic_ack_eth": None, "imm_data": None, "ieth": None}
        if opcode == CNP_OPCODE:
            name, headers, carries = "CNP", [], False
        else:
            name, headers, carries = OPERATIONS[operation]
            if transport == 3:
                headers = ["deth"] + headers
        assert carries or payload_len == 0
        pad = (4 - payload_len % 4) % 4
        bth_fields = dict(opcode=opcode, solicited=self.u(1), migreq=self.u(1), padcount=pad,
                          version=0, pkey=self.rng.choice([0xFFFF, 0x8001, 0x7FFF]),
                          fecn=self.u(1), becn=self.u(1), dqpn=self.u(24), ackreq=self.u(1),
                          psn=self.rng.choice([0, 0xFFFFFF, self.u(24)]))
        if opcode == CNP_OPCODE:
            # scapy's own CNP helper: opcode 0x81, BECN set, 16 reserved bytes.
            bth = roce.cnp(bth_fields["dqpn"])
            bth[BTH].pkey = bth_fields["pkey"]
            bth_fields["psn"] = 0     # what scapy's helper leaves in a CNP
            layers = ip / udp / bth
        else:
            # Reserved bits set in some packets: they are masked (byte 4) or covered (byte 8).
            bth = BTH(resv6=self.u(6) if self.count % 4 == 0 else 0, **bth_fields)
            after = b""
            aeth = None
            for header in headers:
                if header == "deth":
                    qkey, src_qp = self.u(32), self.u(24)
                    after += struct.pack("!IBBH", qkey, 0, src_qp >> 16, src_qp & 0xFFFF)
                    expected["deth"] = {"qkey": qkey, "src_qp": src_qp}
                elif header == "reth":
                    va, rkey, dma = self.u(64), self.u(32), self.rng.choice([0, payload_len, self.u(31)])
                    after += struct.pack("!QII", va, rkey, dma)
                    expected["reth"] = {"va": "%x" % va, "rkey": rkey, "dma_len": dma}
                elif header == "atomic":
                    va, rkey, swap, compare = self.u(61) << 3, self.u(32), self.u(64), self.u(64)
                    after += struct.pack("!QIQQ", va, rkey, swap, compare)
                    expected["atomic_eth"] = {"va": "%x" % va, "rkey": rkey, "swap_add": "%x" % swap,
                                              "compare": "%x" % compare}
                elif header == "aeth":
                    assert after == b""   # AETH comes straight after the BTH in every opcode here
                    aeth = AETH(syndrome=self.rng.choice(AETH_SYNDROMES), msn=self.u(24))
                elif header == "atomic_ack":
                    orig = self.u(64)
                    after += struct.pack("!Q", orig)
                    expected["atomic_ack_eth"] = {"orig_data": "%x" % orig}
                elif header == "imm":
                    imm = self.u(32)
                    after += struct.pack("!I", imm)
                    expected["imm_data"] = imm
                elif header == "ieth":
                    rkey = self.u(32)
                    after += struct.pack("!I", rkey)
                    expected["ieth"] = {"rkey": rkey}
            payload = bytes(self.u(8) for _ in range(payload_len))
            layers = ip / udp / bth
            if aeth is not None:
                layers = layers / aeth
            layers = layers / Raw(after + payload + b"\x00" * pad)
        packet = raw(layers)

        # Read the packet back through scapy's dissectors: BTH and AETH fields come from
        # scapy's view of the bytes, not from the arguments above.
        parsed = (IP if ip_version == 4 else IPv6)(packet)
        b = parsed[BTH]
        assert (b.opcode, b.padcount, b.psn, b.dqpn) == (opcode, pad, bth_fields["psn"], bth_fields["dqpn"]), (b.opcode, b.padcount, b.psn, b.dqpn, bth_fields)
        if "aeth" in headers:
            # scapy binds AETH only under ACKNOWLEDGE; elsewhere read it from the BTH payload.
            a = parsed[AETH] if AETH in parsed else AETH(raw(b.payload)[:4])
            expected["aeth"] = {"syndrome": a.syndrome, "msn": a.msn}
        scapy_icrc = struct.unpack("<I", packet[-4:])[0]
        rxe_icrc = rxe_style_icrc(packet)
        if scapy_icrc != rxe_icrc:
            raise SystemExit("scapy and rxe-style ICRC disagree for %s/ipv%d: %08x vs %08x"
                             % (name, ip_version, scapy_icrc, rxe_icrc))
        ip_header_len = 20 if ip_version == 4 else 40
        udp_payload = packet[ip_header_len + 8:]
        header_len = 12 + sum({"deth": 8, "reth": 16, "atomic": 28, "aeth": 4, "atomic_ack": 8,
                               "imm": 4, "ieth": 4}[h] for h in headers) + (16 if opcode == CNP_OPCODE else 0)
        payload_hex = udp_payload[header_len:header_len + payload_len].hex()
        scapy_name = roce._bth_opcodes.get(opcode)
        return {
            "name": "%s/ipv%d/payload-%d" % (scapy_name or "0x%02x" % opcode, ip_version, payload_len),
            "ip_version": ip_version,
            "ip_packet": packet.hex(),
            "udp_payload": udp_payload.hex(),
            "network": net,
            "opcode": opcode,
            # scapy's name for the opcode, or null where scapy has none (the invalidate sends).
            "opcode_name": scapy_name,
            "bth": {"solicited": bool(b.solicited), "migreq": bool(b.migreq), "pad_count": b.padcount,
                    "pkey": b.pkey, "fecn": bool(b.fecn), "becn": bool(b.becn), "dest_qp": b.dqpn,
                    "ack_req": bool(b.ackreq), "psn": b.psn},
            **expected,
            "header_length": header_len,
            "payload": payload_hex,
            "icrc": scapy_icrc,
        }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "..", "Tests", "RoCEWireTests", "Vectors", "roce-vectors.json")
    builder = Builder(seed=4791)
    opcodes = [op for op in RC_OPS] + [0x20 | op for op in UC_OPS] + [0x60 | op for op in UD_OPS] + [CNP_OPCODE]
    vectors = []
    for index, opcode in enumerate(opcodes):
        carries = opcode != CNP_OPCODE and OPERATIONS[opcode & 0x1F][2]
        position = OPERATIONS[opcode & 0x1F][0] if opcode != CNP_OPCODE else "CNP"
        for ip_version in (4, 6):
            if not carries:
                lengths = [0]
            elif position.endswith("FIRST") or position.endswith("MIDDLE"):
                lengths = [256]                      # first/middle packets are whole MTUs: no pad
            else:
                # Every pad count 0–3, shifted per opcode and IP version so lengths vary.
                base = 1 + index * 3 + ip_version
                lengths = [base + k for k in range(4)]
            for length in lengths:
                vectors.append(builder.vector(opcode, ip_version, length))
    # Larger packets, as the benchmark and the engine use them.
    for ip_version in (4, 6):
        vectors.append(builder.vector(0x07, ip_version, 4096))   # RC RDMA WRITE MIDDLE, 4 KiB
        vectors.append(builder.vector(0x64, ip_version, 1021))   # UD SEND ONLY, pad 3
        vectors.append(builder.vector(0x04, ip_version, 0))      # RC SEND ONLY, empty
    document = {
        "generator": "tools/roce-vectors/generate.py (scapy %s, seed 4791)" % __import__("scapy").__version__,
        "note": "ICRC by scapy's BTH.post_build; also checked against an rxe-style computation.",
        "vectors": vectors,
    }
    # One vector per line: readable diffs when the generator changes.
    with open(out, "w") as f:
        f.write('{"generator": %s,\n "note": %s,\n "vectors": [\n' % (
            json.dumps(document["generator"]), json.dumps(document["note"])))
        f.write(",\n".join(json.dumps(v, separators=(",", ":")) for v in vectors))
        f.write("\n]}\n")
    pads = sorted({v["bth"]["pad_count"] for v in vectors})
    print("wrote %d vectors to %s (opcodes: %d, pad counts: %s); scapy ICRC == rxe-style ICRC for all"
          % (len(vectors), os.path.normpath(out), len(opcodes), pads))


if __name__ == "__main__":
    main()
