import RDMAPerf

PingPongCommand.main()
