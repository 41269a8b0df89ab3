import ArgumentParser
import Foundation
import RDMA

/// Lists RDMA devices, their ports and GID tables, and says which GID index RoCEv2 over
/// IPv4 uses — or, with no device, why there is none and what to do.
@main
struct RDMADevices: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rdma-devices",
        abstract: "List RDMA devices, ports and GID tables (like ibv_devinfo -v, condensed).",
        discussion: """
        Exits 0 when at least one device is present, 1 when none is (with the reason).

        Examples:
          rdma-devices                 # a table per device
          rdma-devices --json          # the same as JSON, for scripts
          rdma-devices --device rxe0   # one device
        """)

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @Option(help: "Show only this device.")
    var device: String?

    func run() throws {
        var inventory = DeviceInventory.current()
        if let device {
            inventory.devices = inventory.devices.filter { $0.name == device }
            if inventory.devices.isEmpty && inventory.absenceExplanation == nil {
                inventory.absenceExplanation = "no RDMA device named \(device)"
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(inventory), as: UTF8.self))
        } else {
            print(inventory)
        }
        if inventory.devices.isEmpty { throw ExitCode(1) }
    }
}
