// ISA-L's CRC-32 (IEEE 802.3 reflected, zlib-compatible), used for the RoCEv2 ICRC.
#include <stdint.h>
#include <isa-l/crc.h>
