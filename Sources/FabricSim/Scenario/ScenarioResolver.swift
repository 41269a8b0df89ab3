import Congestion

/// Checks the meaning of a decoded scenario file — names, links, routes, ranges — and builds
/// the ``FabricScenario`` the simulator runs.
struct ScenarioResolver {
    let file: ScenarioFile
    var limits = ScenarioLimits.standard

    func resolve() throws -> FabricScenario {
        let duration = try positiveTime(file.durationMicroseconds, "durationMicroseconds", maximum: limits.maximumDurationMicroseconds)
        _ = try limits.count(file.switches.count + file.hosts.count, "hosts", 1...limits.maximumNodes)
        _ = try limits.count(file.links.count, "links", 0...limits.maximumLinks)
        _ = try limits.count(file.flows.count, "flows", 0...limits.maximumFlows)
        let nodes = try resolveNodes()
        let links = try resolveLinks(nodes: nodes)
        let flows = try resolveFlows(nodes: nodes, links: links, duration: duration)
        let sampling = file.sampling
        let sampleInterval = try positiveTime(sampling?.intervalMicroseconds ?? 10, "sampling.intervalMicroseconds")
        let fairnessWindow = try positiveTime(sampling?.fairnessWindowMicroseconds ?? 500, "sampling.fairnessWindowMicroseconds")
        guard fairnessWindow >= sampleInterval else {
            throw ScenarioError(field: "sampling.fairnessWindowMicroseconds", problem: "must not be shorter than sampling.intervalMicroseconds")
        }
        let threshold = sampling?.fairnessThreshold ?? 0.95
        guard threshold > 0 && threshold <= 1 else {
            throw ScenarioError(field: "sampling.fairnessThreshold", problem: "must be in (0, 1]")
        }
        let packetSize = file.packetSizeBytes ?? 1000
        guard (64...9216).contains(packetSize) else {
            throw ScenarioError(field: "packetSizeBytes", problem: "must be in 64…9216")
        }
        let cnpSize = file.cnpSizeBytes ?? 64
        guard (64...1500).contains(cnpSize) else {
            throw ScenarioError(field: "cnpSizeBytes", problem: "must be in 64…1500")
        }
        var scenario = FabricScenario(
            name: file.name,
            summary: file.description ?? "",
            duration: duration,
            seed: file.seed ?? 1,
            packetSizeBytes: packetSize,
            cnpSizeBytes: cnpSize,
            dcqcnEnabled: file.dcqcn.enabled ?? true,
            dcqcn: try resolveDCQCN(),
            marking: try resolveMarking(),
            pfc: try resolvePFC(),
            sampleInterval: sampleInterval,
            fairnessWindow: fairnessWindow,
            fairnessThreshold: threshold,
            nodes: nodes,
            links: links,
            flows: flows
        )
        scenario.unknownUnicast = try resolveUnknownUnicast(nodes: nodes)
        scenario.pfcWatchdog = try resolveWatchdog()
        try limits.check(recordingOf: scenario)
        return scenario
    }

    private func resolveUnknownUnicast(nodes: [FabricScenario.Node]) throws -> FabricScenario.UnknownUnicast {
        guard let section = file.unknownUnicast else { return .init() }
        var action = FabricScenario.UnknownDestinationAction.flood
        if let name = section.losslessAction {
            guard let known = FabricScenario.UnknownDestinationAction(rawValue: name) else {
                let names = FabricScenario.UnknownDestinationAction.allCases.map(\.rawValue).joined(separator: ", ")
                throw ScenarioError(field: "unknownUnicast.losslessAction", problem: "unknown action \"\(name)\" (known: \(names))")
            }
            action = known
        }
        _ = try limits.count(section.missingMACEntries.count, "unknownUnicast.missingMACEntries", 0...limits.maximumNodes * 64)
        let index = Dictionary(uniqueKeysWithValues: nodes.enumerated().map { ($1.name, $0) })
        var entries: [FabricScenario.MissingMACEntry] = []
        var seen = Set<FabricScenario.MissingMACEntry>()
        for (position, entry) in section.missingMACEntries.enumerated() {
            let field = "unknownUnicast.missingMACEntries[\(position)]"
            guard let switchNode = index[entry.switch], nodes[switchNode].kind == .switch else {
                throw ScenarioError(field: "\(field).switch", problem: "\"\(entry.switch)\" is not a switch of the scenario")
            }
            guard let host = index[entry.host], nodes[host].kind == .host else {
                throw ScenarioError(field: "\(field).host", problem: "\"\(entry.host)\" is not a host of the scenario")
            }
            let missing = FabricScenario.MissingMACEntry(switchNode: switchNode, host: host)
            guard seen.insert(missing).inserted else { throw ScenarioError(field: field, problem: "\(entry.switch)/\(entry.host) is listed twice") }
            entries.append(missing)
        }
        return .init(missingMACEntries: entries, losslessAction: action)
    }

    private func resolveWatchdog() throws -> FabricScenario.PFCWatchdog? {
        guard let section = file.pfc.watchdog else { return nil }
        return .init(detection: try positiveTime(section.detectionMicroseconds, "pfc.watchdog.detectionMicroseconds"),
                     restoration: try positiveTime(section.restorationMicroseconds, "pfc.watchdog.restorationMicroseconds"))
    }

    private func positiveTime(_ microseconds: Double, _ field: String, maximum: Double? = nil) throws -> Nanoseconds {
        let time = Nanoseconds.roundedMicroseconds(try limits.time(microseconds, field, maximum: maximum))
        guard time > .zero else { throw ScenarioError(field: field, problem: "\(microseconds) µs rounds to 0 ns: must be positive") }
        return time
    }

    private func resolveNodes() throws -> [FabricScenario.Node] {
        var nodes: [FabricScenario.Node] = []
        var seen: [String: String] = [:]
        for (list, kind, key) in [(file.switches, FabricScenario.NodeKind.switch, "switches"), (file.hosts, .host, "hosts")] {
            for (index, name) in list.enumerated() {
                let field = "\(key)[\(index)]"
                guard !name.isEmpty else { throw ScenarioError(field: field, problem: "a node name must not be empty") }
                if let first = seen[name] { throw ScenarioError(field: field, problem: "\"\(name)\" is already named by \(first)") }
                seen[name] = field
                nodes.append(.init(name: name, kind: kind))
            }
        }
        guard nodes.contains(where: { $0.kind == .host }) else { throw ScenarioError(field: "hosts", problem: "at least one host is needed") }
        return nodes
    }

    private func resolveLinks(nodes: [FabricScenario.Node]) throws -> [FabricScenario.Link] {
        let index = Dictionary(uniqueKeysWithValues: nodes.enumerated().map { ($1.name, $0) })
        var links: [FabricScenario.Link] = []
        var linked: [Set<Int>: Int] = [:]
        for (position, entry) in file.links.enumerated() {
            let field = "links[\(position)]"
            guard entry.between.count == 2 else { throw ScenarioError(field: "\(field).between", problem: "must name exactly two nodes") }
            var ends: [Int] = []
            for (side, name) in entry.between.enumerated() {
                guard let node = index[name] else {
                    throw ScenarioError(field: "\(field).between[\(side)]", problem: "unknown node \"\(name)\" (not in switches or hosts)")
                }
                ends.append(node)
            }
            guard ends[0] != ends[1] else { throw ScenarioError(field: "\(field).between", problem: "a link needs two different nodes") }
            if let earlier = linked[Set(ends)] {
                throw ScenarioError(field: "\(field).between", problem: "\(entry.between[0]) and \(entry.between[1]) are already linked by links[\(earlier)]")
            }
            linked[Set(ends)] = position
            guard let gigabits = entry.rateGigabitsPerSecond ?? file.linkDefaults?.rateGigabitsPerSecond else {
                throw ScenarioError(field: "\(field).rateGigabitsPerSecond", problem: "missing, and linkDefaults.rateGigabitsPerSecond is not set")
            }
            guard gigabits.isFinite, limits.rateGigabitsPerSecond.contains(gigabits) else {
                throw ScenarioError(field: "\(field).rateGigabitsPerSecond",
                                    problem: "\(gigabits): must be in \(limits.rateGigabitsPerSecond.lowerBound)…\(limits.rateGigabitsPerSecond.upperBound) Gb/s")
            }
            guard let delay = entry.delayMicroseconds ?? file.linkDefaults?.delayMicroseconds else {
                throw ScenarioError(field: "\(field).delayMicroseconds", problem: "missing, and linkDefaults.delayMicroseconds is not set")
            }
            _ = try limits.time(delay, "\(field).delayMicroseconds", allowZero: true)
            links.append(.init(
                nodeA: ends[0], nodeB: ends[1],
                rateBitsPerSecond: Int64((gigabits * 1e9).rounded()),
                propagationDelay: .roundedMicroseconds(delay)
            ))
        }
        return links
    }

    private func resolveFlows(nodes: [FabricScenario.Node], links: [FabricScenario.Link], duration: Nanoseconds) throws -> [FabricScenario.Flow] {
        let index = Dictionary(uniqueKeysWithValues: nodes.enumerated().map { ($1.name, $0) })
        let topology = Topology(nodeCount: nodes.count, links: links)
        var flows: [FabricScenario.Flow] = []
        var names: Set<String> = []
        guard !file.flows.isEmpty else { throw ScenarioError(field: "flows", problem: "at least one flow is needed") }
        for (position, entry) in file.flows.enumerated() {
            let field = "flows[\(position)]"
            func host(_ name: String, _ key: String) throws -> Int {
                guard let node = index[name] else { throw ScenarioError(field: "\(field).\(key)", problem: "unknown node \"\(name)\"") }
                guard nodes[node].kind == .host else { throw ScenarioError(field: "\(field).\(key)", problem: "\"\(name)\" is a switch; flows run between hosts") }
                return node
            }
            let source = try host(entry.from, "from")
            let destination = try host(entry.to, "to")
            guard source != destination else { throw ScenarioError(field: "\(field).to", problem: "a flow needs a destination other than its source") }
            let route: [Int]
            if let names = entry.route {
                route = try checkedRoute(names, field: "\(field).route", source: source, destination: destination, index: index, nodes: nodes, topology: topology)
            } else if let path = topology.shortestPath(from: source, to: destination, through: { nodes[$0].kind == .switch }) {
                route = path
            } else {
                throw ScenarioError(field: "\(field).to", problem: "no path from \(entry.from) to \(entry.to) through switches")
            }
            let name = entry.name ?? "\(entry.from)->\(entry.to)"
            guard names.insert(name).inserted else { throw ScenarioError(field: "\(field).name", problem: "\"\(name)\" names another flow too; give each flow a name") }
            let start = Nanoseconds.roundedMicroseconds(try limits.time(entry.startMicroseconds ?? 0, "\(field).startMicroseconds", allowZero: true))
            guard start < duration else { throw ScenarioError(field: "\(field).startMicroseconds", problem: "the flow would start after the run ends (durationMicroseconds)") }
            let stop = try entry.stopMicroseconds.map { Nanoseconds.roundedMicroseconds(try limits.time($0, "\(field).stopMicroseconds")) }
            if let stop, stop <= start { throw ScenarioError(field: "\(field).stopMicroseconds", problem: "must be after startMicroseconds") }
            if let size = entry.sizeBytes { _ = try limits.count(size, "\(field).sizeBytes", 1...limits.maximumFlowBytes) }
            flows.append(.init(name: name, route: route, start: start, stop: stop, sizeBytes: entry.sizeBytes))
        }
        return flows
    }

    private func checkedRoute(
        _ names: [String], field: String, source: Int, destination: Int,
        index: [String: Int], nodes: [FabricScenario.Node], topology: Topology
    ) throws -> [Int] {
        guard names.count >= 2 else { throw ScenarioError(field: field, problem: "a route lists at least the source and the destination") }
        var route: [Int] = []
        var visited = Set<Int>()
        for (hop, name) in names.enumerated() {
            guard let node = index[name] else { throw ScenarioError(field: "\(field)[\(hop)]", problem: "unknown node \"\(name)\"") }
            guard visited.insert(node).inserted else {
                throw ScenarioError(field: "\(field)[\(hop)]", problem: "\"\(name)\" is visited twice: a route must not loop")
            }
            if hop > 0 && hop < names.count - 1 && nodes[node].kind != .switch {
                throw ScenarioError(field: "\(field)[\(hop)]", problem: "\"\(name)\" is a host; only switches forward")
            }
            if let previous = route.last, !topology.areLinked(previous, node) {
                throw ScenarioError(field: "\(field)[\(hop)]", problem: "no link between \(names[hop - 1]) and \(name)")
            }
            route.append(node)
        }
        guard route.first == source else { throw ScenarioError(field: "\(field)[0]", problem: "a route starts at the flow's from host") }
        guard route.last == destination else { throw ScenarioError(field: "\(field)[\(names.count - 1)]", problem: "a route ends at the flow's to host") }
        return route
    }

    private func resolveDCQCN() throws -> DCQCNParameters {
        let section = file.dcqcn
        guard var parameters = DCQCNParameters.presets.first(where: { $0.name == section.preset })?.parameters else {
            let known = DCQCNParameters.presets.map(\.name).joined(separator: ", ")
            throw ScenarioError(field: "dcqcn.preset", problem: "unknown preset \"\(section.preset)\" (known: \(known))")
        }
        func time(_ value: Double, _ key: ScenarioFile.DCQCNSection.CodingKeys, allowZero: Bool = false) throws -> Nanoseconds {
            .roundedMicroseconds(try limits.time(value, "dcqcn.\(key.rawValue)", allowZero: allowZero))
        }
        func rate(_ value: Double, _ key: ScenarioFile.DCQCNSection.CodingKeys) throws -> Double {
            guard value.isFinite, value <= limits.maximumMegabitsPerSecond else {
                throw ScenarioError(field: "dcqcn.\(key.rawValue)", problem: "\(value): must be finite and at most \(limits.maximumMegabitsPerSecond) Mb/s")
            }
            return value * 1e6
        }
        if let value = section.alphaGain { parameters.alphaGain = value }
        if let value = section.initialAlpha { parameters.initialAlpha = value }
        if let value = section.alphaUpdatePeriodMicroseconds { parameters.alphaUpdatePeriod = try time(value, .alphaUpdatePeriodMicroseconds) }
        if let value = section.rateIncreaseTimerMicroseconds { parameters.rateIncreaseTimer = try time(value, .rateIncreaseTimerMicroseconds) }
        if let value = section.byteCounterBytes { parameters.byteCounterBytes = try limits.count(value, "dcqcn.byteCounterBytes", 1...limits.maximumBufferBytes) }
        if let value = section.fastRecoveryThreshold { parameters.fastRecoveryThreshold = try limits.count(value, "dcqcn.fastRecoveryThreshold", 0...1 << 20) }
        if let value = section.additiveIncreaseMegabitsPerSecond { parameters.additiveIncreaseBitsPerSecond = try rate(value, .additiveIncreaseMegabitsPerSecond) }
        if let value = section.hyperIncreaseMegabitsPerSecond { parameters.hyperIncreaseBitsPerSecond = try rate(value, .hyperIncreaseMegabitsPerSecond) }
        if let value = section.minimumRateMegabitsPerSecond { parameters.minimumRateBitsPerSecond = try rate(value, .minimumRateMegabitsPerSecond) }
        if let value = section.minimumCNPIntervalMicroseconds { parameters.minimumCNPInterval = try time(value, .minimumCNPIntervalMicroseconds, allowZero: true) }
        if let value = section.rateDecreasePeriodMicroseconds {
            let period = try time(value, .rateDecreasePeriodMicroseconds, allowZero: true)
            parameters.rateDecreasePeriod = period == .zero ? nil : period
        }
        func rule<Rule: RawRepresentable & CaseIterable>(_ value: String, _ key: ScenarioFile.DCQCNSection.CodingKeys) throws -> Rule
        where Rule.RawValue == String {
            guard let rule = Rule(rawValue: value) else {
                let known = Rule.allCases.map(\.rawValue).joined(separator: ", ")
                throw ScenarioError(field: "dcqcn.\(key.rawValue)", problem: "unknown rule \"\(value)\" (known: \(known))")
            }
            return rule
        }
        if let value = section.targetRateClamp { parameters.targetRateClamp = try rule(value, .targetRateClamp) }
        if let value = section.rateIncreaseStages { parameters.rateIncreaseStages = try rule(value, .rateIncreaseStages) }
        if let first = parameters.problems.first {
            let keys: [String: ScenarioFile.DCQCNSection.CodingKeys] = [
                "alphaGain": .alphaGain, "initialAlpha": .initialAlpha,
                "alphaUpdatePeriod": .alphaUpdatePeriodMicroseconds, "rateIncreaseTimer": .rateIncreaseTimerMicroseconds,
                "byteCounterBytes": .byteCounterBytes, "fastRecoveryThreshold": .fastRecoveryThreshold,
                "additiveIncreaseBitsPerSecond": .additiveIncreaseMegabitsPerSecond,
                "hyperIncreaseBitsPerSecond": .hyperIncreaseMegabitsPerSecond,
                "minimumRateBitsPerSecond": .minimumRateMegabitsPerSecond,
                "minimumCNPInterval": .minimumCNPIntervalMicroseconds,
                "rateDecreasePeriod": .rateDecreasePeriodMicroseconds,
            ]
            throw ScenarioError(field: "dcqcn.\(keys[first.field]?.rawValue ?? first.field)", problem: first.problem)
        }
        return parameters
    }

    private func resolveMarking() throws -> ECNMarkingParameters {
        let section = file.ecnMarking
        var parameters: ECNMarkingParameters
        if let name = section.preset {
            guard let preset = ECNMarkingParameters.presets.first(where: { $0.name == name })?.parameters else {
                let known = ECNMarkingParameters.presets.map(\.name).joined(separator: ", ")
                throw ScenarioError(field: "ecnMarking.preset", problem: "unknown preset \"\(name)\" (known: \(known))")
            }
            parameters = preset
            if let value = section.kMinBytes { parameters.kMinBytes = value }
            if let value = section.kMaxBytes { parameters.kMaxBytes = value }
            if let value = section.maximumMarkingProbability { parameters.maximumMarkingProbability = value }
        } else {
            guard let kMin = section.kMinBytes else { throw ScenarioError(field: "ecnMarking.kMinBytes", problem: "missing (give it, or a preset)") }
            guard let kMax = section.kMaxBytes else { throw ScenarioError(field: "ecnMarking.kMaxBytes", problem: "missing (give it, or a preset)") }
            guard let pMax = section.maximumMarkingProbability else {
                throw ScenarioError(field: "ecnMarking.maximumMarkingProbability", problem: "missing (give it, or a preset)")
            }
            parameters = ECNMarkingParameters(kMinBytes: kMin, kMaxBytes: kMax, maximumMarkingProbability: pMax)
        }
        if let first = parameters.problems.first { throw ScenarioError(field: "ecnMarking.\(first.field)", problem: first.problem) }
        _ = try limits.count(parameters.kMaxBytes, "ecnMarking.kMaxBytes", 0...limits.maximumBufferBytes)
        return parameters
    }

    private func resolvePFC() throws -> FabricScenario.PFC {
        let section = file.pfc
        _ = try limits.count(section.xoffBytes, "pfc.xoffBytes", 1...limits.maximumBufferBytes)
        guard section.xonBytes >= 0 && section.xonBytes <= section.xoffBytes else {
            throw ScenarioError(field: "pfc.xonBytes", problem: "must be in 0…xoffBytes")
        }
        return .init(enabled: section.enabled ?? true, xoffBytes: section.xoffBytes, xonBytes: section.xonBytes)
    }
}
