#ifndef CETHTOOL_H
#define CETHTOOL_H

#include <stdint.h>

/// Ethernet statistics through the SIOCETHTOOL ioctl, the way `ethtool -S` reads them.
/// Every function returns 0 or a negated errno (one return convention for the Swift side).
/// `socket_fd` is any AF_INET datagram socket; `interface_name` a netdev name (< IFNAMSIZ).

/// Number of statistics the driver exports (ETHTOOL_GSSET_INFO for ETH_SS_STATS, falling back
/// to ETHTOOL_GDRVINFO's n_stats on drivers without GSSET_INFO).
int cethtool_stat_count(int socket_fd, const char *interface_name, uint32_t *count);

/// The statistics' names (ETHTOOL_GSTRINGS, ETH_SS_STATS): `count` names of
/// CETHTOOL_NAME_LENGTH bytes each, NUL-padded, into `names` (count * CETHTOOL_NAME_LENGTH bytes).
/// `*returned` is how many the driver gave (it may shrink between calls).
int cethtool_stat_names(int socket_fd, const char *interface_name, uint32_t count, char *names, uint32_t *returned);

/// The statistics' values (ETHTOOL_GSTATS), in the order of their names.
int cethtool_stat_values(int socket_fd, const char *interface_name, uint32_t count, uint64_t *values, uint32_t *returned);

/// ETH_GSTRING_LEN.
#define CETHTOOL_NAME_LENGTH 32

#endif
