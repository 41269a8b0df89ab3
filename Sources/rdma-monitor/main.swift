print("rdma-monitor: not yet")
