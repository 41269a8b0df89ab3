"""Checks every RoCEv2 packet's ICRC in a pcap with scapy.contrib.roce (not our code)."""
import sys

from scapy.compat import raw
from scapy.contrib.roce import BTH, CNP_OPCODE, CNPPadding
from scapy.layers.inet import UDP
from scapy.utils import rdpcap

packets = rdpcap(sys.argv[1])
problems = []
for index, packet in enumerate(packets):
    if BTH not in packet or UDP not in packet:
        problems.append("packet %d: not decoded as RoCEv2 (no UDP/BTH)" % index)
        continue
    carried = raw(packet[UDP].payload)[-4:]        # the ICRC as it travels
    computed = packet[BTH].compute_icrc(None)       # scapy's, from the packet's own IP/UDP headers
    if carried != computed:
        problems.append("packet %d: opcode %d psn %d: ICRC %s, scapy computes %s"
                        % (index, packet[BTH].opcode, packet[BTH].psn, carried.hex(), computed.hex()))
# RoCEv2 CNPs as scapy decodes them: opcode 0x81 with BECN and the 16-byte CNPPadding.
cnps = sum(1 for packet in packets
           if BTH in packet and packet[BTH].opcode == CNP_OPCODE and packet[BTH].becn == 1 and CNPPadding in packet)
for line in problems:
    print(line)
if cnps:
    print("%d CNPs (opcode 0x81, BECN, 16 reserved bytes) decoded by scapy" % cnps)
print("%d packets, %d ICRCs match scapy's" % (len(packets), len(packets) - len(problems)))
sys.exit(1 if problems else 0)
