#include "CEthtool.h"

#include <errno.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

_Static_assert(CETHTOOL_NAME_LENGTH == ETH_GSTRING_LEN, "ETH_GSTRING_LEN changed");

static int call(int socket_fd, const char *interface_name, void *command) {
    struct ifreq request;
    memset(&request, 0, sizeof request);
    if (strlen(interface_name) >= IFNAMSIZ) return -ENAMETOOLONG;
    strncpy(request.ifr_name, interface_name, IFNAMSIZ - 1);
    request.ifr_data = command;
    return ioctl(socket_fd, SIOCETHTOOL, &request) < 0 ? -errno : 0;
}

int cethtool_stat_count(int socket_fd, const char *interface_name, uint32_t *count) {
    struct ethtool_sset_info *info = calloc(1, sizeof *info + sizeof(uint32_t));
    if (info == NULL) return -ENOMEM;
    info->cmd = ETHTOOL_GSSET_INFO;
    info->sset_mask = 1ULL << ETH_SS_STATS;
    int result = call(socket_fd, interface_name, info);
    if (result == 0) *count = (info->sset_mask & (1ULL << ETH_SS_STATS)) ? info->data[0] : 0;
    free(info);
    if (result == 0) return 0;
    if (result != -EOPNOTSUPP) return result;
    struct ethtool_drvinfo driver;
    memset(&driver, 0, sizeof driver);
    driver.cmd = ETHTOOL_GDRVINFO;
    result = call(socket_fd, interface_name, &driver);
    if (result == 0) *count = driver.n_stats;
    return result;
}

int cethtool_stat_names(int socket_fd, const char *interface_name, uint32_t count, char *names, uint32_t *returned) {
    struct ethtool_gstrings *strings = calloc(1, sizeof *strings + (size_t)count * ETH_GSTRING_LEN);
    if (strings == NULL) return -ENOMEM;
    strings->cmd = ETHTOOL_GSTRINGS;
    strings->string_set = ETH_SS_STATS;
    strings->len = count;
    int result = call(socket_fd, interface_name, strings);
    if (result == 0) {
        uint32_t given = strings->len < count ? strings->len : count;
        memcpy(names, strings->data, (size_t)given * ETH_GSTRING_LEN);
        *returned = given;
    }
    free(strings);
    return result;
}

int cethtool_stat_values(int socket_fd, const char *interface_name, uint32_t count, uint64_t *values, uint32_t *returned) {
    struct ethtool_stats *stats = calloc(1, sizeof *stats + (size_t)count * sizeof(uint64_t));
    if (stats == NULL) return -ENOMEM;
    stats->cmd = ETHTOOL_GSTATS;
    stats->n_stats = count;
    int result = call(socket_fd, interface_name, stats);
    if (result == 0) {
        uint32_t given = stats->n_stats < count ? stats->n_stats : count;
        memcpy(values, stats->data, (size_t)given * sizeof(uint64_t));
        *returned = given;
    }
    free(stats);
    return result;
}
