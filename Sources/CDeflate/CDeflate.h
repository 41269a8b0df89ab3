// libdeflate's CRC-32 (IEEE 802.3, zlib-compatible), used for the RoCEv2 ICRC.
#include <libdeflate.h>
