import Testing
@testable import RDMAPerf
