import RDMAPerf

ThroughputCommand.main()
