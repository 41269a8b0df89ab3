import Congestion

/// The three published scenarios, built in code with the same settings as the files in
/// `scenarios/` (a test checks that they agree), and scalable for tests and benchmarks.
extension FabricScenario {
    /// The DCQCN, marking and PFC settings every built-in scenario shares.
    public struct Settings: Hashable, Sendable {
        public var dcqcnEnabled: Bool
        public var dcqcn: DCQCNParameters
        public var marking: ECNMarkingParameters
        public var pfc: PFC
        public var linkDelay: Nanoseconds
        public var sampleInterval: Nanoseconds
        public var fairnessWindow: Nanoseconds
        public var seed: UInt64

        public init(
            dcqcnEnabled: Bool = true,
            dcqcn: DCQCNParameters = .hpccMellanoxModel,
            marking: ECNMarkingParameters = .hpccDCQCNPaperProfile,
            pfc: PFC = PFC(xoffBytes: 500_000, xonBytes: 480_000),
            linkDelay: Nanoseconds = .microseconds(1),
            sampleInterval: Nanoseconds = .microseconds(10),
            fairnessWindow: Nanoseconds = .microseconds(500),
            seed: UInt64 = 1
        ) {
            self.dcqcnEnabled = dcqcnEnabled
            self.dcqcn = dcqcn
            self.marking = marking
            self.pfc = pfc
            self.linkDelay = linkDelay
            self.sampleInterval = sampleInterval
            self.fairnessWindow = fairnessWindow
            self.seed = seed
        }
    }

    /// N senders behind one switch, all sending at once to one receiver: the N:1 incast.
    ///
    /// Hosts `H1…HN` and `R` hang off switch `S1`; flow `Hk->R` starts at time zero.
    public static func incast(
        senderCount: Int,
        linkRateBitsPerSecond: Int64 = 40_000_000_000,
        duration: Nanoseconds = .milliseconds(20),
        settings: Settings = Settings()
    ) -> FabricScenario {
        precondition(senderCount >= 1)
        let senders = (1...senderCount).map { "H\($0)" }
        return build(
            name: "incast-\(senderCount)to1",
            summary: "\(senderCount) senders behind one switch send to one receiver at once.",
            duration: duration,
            switches: ["S1"],
            hosts: senders + ["R"],
            links: (senders + ["R"]).map { ($0, "S1") },
            flows: senders.map { (name: "\($0)->R", from: $0, to: "R", start: Nanoseconds.zero) },
            linkRateBitsPerSecond: linkRateBitsPerSecond,
            settings: settings
        )
    }

    /// Two flows to one receiver; the second starts `stagger` after the first.
    public static func staggeredStart(
        stagger: Nanoseconds = .milliseconds(5),
        linkRateBitsPerSecond: Int64 = 40_000_000_000,
        duration: Nanoseconds = .milliseconds(25),
        settings: Settings = Settings()
    ) -> FabricScenario {
        build(
            name: "staggered-2flows",
            summary: "H1 sends to R alone; H2 joins after \(stagger). DCQCN should share the link fairly.",
            duration: duration,
            switches: ["S1"],
            hosts: ["H1", "H2", "R"],
            links: [("H1", "S1"), ("H2", "S1"), ("R", "S1")],
            flows: [(name: "H1->R", from: "H1", to: "R", start: .zero), (name: "H2->R", from: "H2", to: "R", start: stagger)],
            linkRateBitsPerSecond: linkRateBitsPerSecond,
            settings: settings
        )
    }

    /// The victim-flow case. Switches S1 and S2 are linked. A1, A2 (on S1) and B1, B2 (on S2)
    /// all send to R (on S2): R's link is the bottleneck. The victim V (on S1) sends to W (on
    /// S2) and shares only the S1→S2 link with A1 and A2, which has room for it. With PFC alone
    /// the congestion at R pauses S1→S2, and with it the victim.
    public static func victimFlow(
        linkRateBitsPerSecond: Int64 = 40_000_000_000,
        duration: Nanoseconds = .milliseconds(20),
        settings: Settings = Settings()
    ) -> FabricScenario {
        build(
            name: "victim-flow",
            summary: "A1, A2 (S1) and B1, B2 (S2) congest R (S2); the victim V (S1) sends to the idle W (S2) over S1-S2.",
            duration: duration,
            switches: ["S1", "S2"],
            hosts: ["A1", "A2", "V", "B1", "B2", "R", "W"],
            links: [("S1", "S2"), ("A1", "S1"), ("A2", "S1"), ("V", "S1"), ("B1", "S2"), ("B2", "S2"), ("R", "S2"), ("W", "S2")],
            flows: [
                (name: "A1->R", from: "A1", to: "R", start: .zero),
                (name: "A2->R", from: "A2", to: "R", start: .zero),
                (name: "B1->R", from: "B1", to: "R", start: .zero),
                (name: "B2->R", from: "B2", to: "R", start: .zero),
                (name: "victim V->W", from: "V", to: "W", start: .zero),
            ],
            linkRateBitsPerSecond: linkRateBitsPerSecond,
            settings: settings
        )
    }

    private static func build(
        name: String,
        summary: String,
        duration: Nanoseconds,
        switches: [String],
        hosts: [String],
        links: [(String, String)],
        flows: [(name: String, from: String, to: String, start: Nanoseconds)],
        linkRateBitsPerSecond: Int64,
        settings: Settings
    ) -> FabricScenario {
        let nodes = switches.map { Node(name: $0, kind: .switch) } + hosts.map { Node(name: $0, kind: .host) }
        let index = Dictionary(uniqueKeysWithValues: nodes.enumerated().map { ($1.name, $0) })
        let builtLinks = links.map {
            Link(nodeA: index[$0.0]!, nodeB: index[$0.1]!, rateBitsPerSecond: linkRateBitsPerSecond, propagationDelay: settings.linkDelay)
        }
        let topology = Topology(nodeCount: nodes.count, links: builtLinks)
        let builtFlows = flows.map { flow in
            Flow(
                name: flow.name,
                route: topology.shortestPath(from: index[flow.from]!, to: index[flow.to]!) { nodes[$0].kind == .switch }!,
                start: flow.start
            )
        }
        return FabricScenario(
            name: name,
            summary: summary,
            duration: duration,
            seed: settings.seed,
            dcqcnEnabled: settings.dcqcnEnabled,
            dcqcn: settings.dcqcn,
            marking: settings.marking,
            pfc: settings.pfc,
            sampleInterval: settings.sampleInterval,
            fairnessWindow: settings.fairnessWindow,
            nodes: nodes,
            links: builtLinks,
            flows: builtFlows
        )
    }
}
