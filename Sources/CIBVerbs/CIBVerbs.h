// C surface of libibverbs and librdmacm for Swift.
//
// Swift imports functions and static inline functions from these headers directly; what it
// cannot import are the calls that verbs.h spells as function-like macros. Those get a
// `cibv_` static inline shim here, and nothing else does: a shim must stay a pure
// pass-through so that its doc comment in Swift can name the C call it stands for.
#ifndef CIBVERBS_H
#define CIBVERBS_H

#include <stddef.h>
#include <stdint.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

/// `ibv_query_port` is a macro that routes through `___ibv_query_port` to fill the
/// extended port attributes; call it as the macro expands, with the full struct.
static inline int cibv_query_port(struct ibv_context *context, uint8_t port_num,
                                  struct ibv_port_attr *port_attr) {
    return ibv_query_port(context, port_num, port_attr);
}

/// `ibv_reg_mr` is a macro that picks `ibv_reg_mr_iova2` when IBV_ACCESS_OPTIONAL bits are set.
static inline struct ibv_mr *cibv_reg_mr(struct ibv_pd *pd, void *addr, size_t length,
                                         int access) {
    return ibv_reg_mr(pd, addr, length, access);
}

/// `ibv_get_device_list` is a macro over `__ibv_get_device_list` (it checks the ABI version).
static inline struct ibv_device **cibv_get_device_list(int *num_devices) {
    return ibv_get_device_list(num_devices);
}

// Swift builds these C structs field by field on the hot path (WorkRequest chains,
// scatter-gather lists, completion polling). If a future rdma-core changed their layout the
// Swift side would still compile, so pin the ABI we were written against here.
_Static_assert(sizeof(struct ibv_sge) == 16, "ibv_sge layout changed");
_Static_assert(sizeof(struct ibv_wc) == 48, "ibv_wc layout changed");
_Static_assert(sizeof(struct ibv_send_wr) == 128, "ibv_send_wr layout changed");
_Static_assert(sizeof(struct ibv_recv_wr) == 32, "ibv_recv_wr layout changed");
_Static_assert(sizeof(union ibv_gid) == 16, "ibv_gid layout changed");
_Static_assert(offsetof(struct ibv_send_wr, wr) == 40, "ibv_send_wr.wr offset changed");

#endif
