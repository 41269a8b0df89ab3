// The JSON shape of a scenario file, field for field; scenarios/README.md documents it.
// Every number carries its unit in its key. ScenarioLoader turns this into a FabricScenario.

struct ScenarioFile: Decodable {
    var name: String
    var description: String?
    var durationMicroseconds: Double
    var seed: UInt64?
    var packetSizeBytes: Int?
    var cnpSizeBytes: Int?
    var dcqcn: DCQCNSection
    var ecnMarking: MarkingSection
    var pfc: PFCSection
    var sampling: SamplingSection?
    var switches: [String]
    var hosts: [String]
    var linkDefaults: LinkDefaults?
    var links: [LinkEntry]
    var flows: [FlowEntry]
    var unknownUnicast: UnknownUnicastSection?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, description, durationMicroseconds, seed, packetSizeBytes, cnpSizeBytes
        case dcqcn, ecnMarking, pfc, sampling, switches, hosts, linkDefaults, links, flows, unknownUnicast
    }

    struct DCQCNSection: Decodable {
        var enabled: Bool?
        var preset: String
        var alphaGain: Double?
        var initialAlpha: Double?
        var alphaUpdatePeriodMicroseconds: Double?
        var rateIncreaseTimerMicroseconds: Double?
        var byteCounterBytes: Int?
        var fastRecoveryThreshold: Int?
        var additiveIncreaseMegabitsPerSecond: Double?
        var hyperIncreaseMegabitsPerSecond: Double?
        var minimumRateMegabitsPerSecond: Double?
        var minimumCNPIntervalMicroseconds: Double?
        var targetRateClamp: String?
        var rateIncreaseStages: String?
        var rateDecreasePeriodMicroseconds: Double?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case enabled, preset, alphaGain, initialAlpha, alphaUpdatePeriodMicroseconds
            case rateIncreaseTimerMicroseconds, byteCounterBytes, fastRecoveryThreshold
            case additiveIncreaseMegabitsPerSecond, hyperIncreaseMegabitsPerSecond
            case minimumRateMegabitsPerSecond, minimumCNPIntervalMicroseconds, targetRateClamp
            case rateIncreaseStages, rateDecreasePeriodMicroseconds
        }
    }

    struct MarkingSection: Decodable {
        var preset: String?
        var kMinBytes: Int?
        var kMaxBytes: Int?
        var maximumMarkingProbability: Double?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case preset, kMinBytes, kMaxBytes, maximumMarkingProbability
        }
    }

    struct PFCSection: Decodable {
        var enabled: Bool?
        var xoffBytes: Int
        var xonBytes: Int
        var watchdog: WatchdogSection?

        enum CodingKeys: String, CodingKey, CaseIterable { case enabled, xoffBytes, xonBytes, watchdog }
    }

    struct WatchdogSection: Decodable {
        var detectionMicroseconds: Double
        var restorationMicroseconds: Double

        enum CodingKeys: String, CodingKey, CaseIterable { case detectionMicroseconds, restorationMicroseconds }
    }

    struct UnknownUnicastSection: Decodable {
        var missingMACEntries: [MissingMACEntry]
        var losslessAction: String?

        enum CodingKeys: String, CodingKey, CaseIterable { case missingMACEntries, losslessAction }

        struct MissingMACEntry: Decodable {
            var `switch`: String
            var host: String

            enum CodingKeys: String, CodingKey, CaseIterable { case `switch`, host }
        }
    }

    struct SamplingSection: Decodable {
        var intervalMicroseconds: Double?
        var fairnessWindowMicroseconds: Double?
        var fairnessThreshold: Double?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case intervalMicroseconds, fairnessWindowMicroseconds, fairnessThreshold
        }
    }

    struct LinkDefaults: Decodable {
        var rateGigabitsPerSecond: Double?
        var delayMicroseconds: Double?

        enum CodingKeys: String, CodingKey, CaseIterable { case rateGigabitsPerSecond, delayMicroseconds }
    }

    struct LinkEntry: Decodable {
        var between: [String]
        var rateGigabitsPerSecond: Double?
        var delayMicroseconds: Double?

        enum CodingKeys: String, CodingKey, CaseIterable { case between, rateGigabitsPerSecond, delayMicroseconds }
    }

    struct FlowEntry: Decodable {
        var name: String?
        var from: String
        var to: String
        var route: [String]?
        var startMicroseconds: Double?
        var stopMicroseconds: Double?
        var sizeBytes: Int?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case name, from, to, route, startMicroseconds, stopMicroseconds, sizeBytes
        }
    }

    /// The keys each object may hold, so that a misspelt key is an error rather than a
    /// silently ignored setting.
    static let keySchema = JSONKeySchema.object(
        CodingKeys.allCases.map(\.rawValue),
        nested: [
            "dcqcn": .object(DCQCNSection.CodingKeys.allCases.map(\.rawValue)),
            "ecnMarking": .object(MarkingSection.CodingKeys.allCases.map(\.rawValue)),
            "pfc": .object(PFCSection.CodingKeys.allCases.map(\.rawValue),
                           nested: ["watchdog": .object(WatchdogSection.CodingKeys.allCases.map(\.rawValue))]),
            "unknownUnicast": .object(UnknownUnicastSection.CodingKeys.allCases.map(\.rawValue),
                                      nested: ["missingMACEntries": .array(.object(UnknownUnicastSection.MissingMACEntry.CodingKeys.allCases.map(\.rawValue)))]),
            "sampling": .object(SamplingSection.CodingKeys.allCases.map(\.rawValue)),
            "linkDefaults": .object(LinkDefaults.CodingKeys.allCases.map(\.rawValue)),
            "links": .array(.object(LinkEntry.CodingKeys.allCases.map(\.rawValue))),
            "flows": .array(.object(FlowEntry.CodingKeys.allCases.map(\.rawValue))),
        ]
    )
}
