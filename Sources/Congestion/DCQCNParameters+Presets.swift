// Sources are those of /work/shared/reference/congestion-and-pfc.md; where that table leaves a
// value blank the comment says where the value came from instead. The DCQCN paper's own
// parameter table was not available to us, so none of these claims to be "the paper's".

extension DCQCNParameters {
    /// The defaults compiled into the first author's ns-3 simulator: the attribute defaults
    /// of `QbbNetDevice` in bobzhuyb/ns3-rdma (`src/point-to-point/model/qbb-net-device.cc`).
    ///
    /// g 1/16, K 55 µs, T 1500 µs, B 150 KB (150 000 B), F 5, R_AI 5 Mb/s, R_HAI 50 Mb/s,
    /// N 50 µs. Not in the reference table, read from the same file: R_min 100 Mb/s
    /// (`MinRate`) and initial α 0.5 (the constructor).
    ///
    /// ```swift
    /// let rp = ReactionPoint(parameters: .ns3FirstAuthorDefaults, lineRateBitsPerSecond: 40e9)
    /// ```
    public static let ns3FirstAuthorDefaults = DCQCNParameters(
        alphaGain: 1.0 / 16,
        initialAlpha: 0.5,
        alphaUpdatePeriod: .microseconds(55),
        rateIncreaseTimer: .microseconds(1500),
        byteCounterBytes: 150_000,
        fastRecoveryThreshold: 5,
        additiveIncreaseBitsPerSecond: 5e6,
        hyperIncreaseBitsPerSecond: 50e6,
        minimumRateBitsPerSecond: 100e6,
        minimumCNPInterval: .microseconds(50)
    )

    /// The settings of the same repository's experiment file, bobzhuyb/ns3-rdma `mix/config.txt`.
    ///
    /// g 1/256 (`DCTCP_GAIN 0.00390625`), K 55 µs, T 60 µs, B 300 KB (300 000 B), F 5,
    /// R_AI 40 Mb/s, R_HAI 200 Mb/s, N 50 µs. The file does not set R_min or the initial α,
    /// so the code defaults apply: 100 Mb/s and 0.5. Its switch marking is
    /// ``ECNMarkingParameters/ns3MixConfig``.
    public static let ns3MixConfig = DCQCNParameters(
        alphaGain: 1.0 / 256,
        initialAlpha: 0.5,
        alphaUpdatePeriod: .microseconds(55),
        rateIncreaseTimer: .microseconds(60),
        byteCounterBytes: 300_000,
        fastRecoveryThreshold: 5,
        additiveIncreaseBitsPerSecond: 40e6,
        hyperIncreaseBitsPerSecond: 200e6,
        minimumRateBitsPerSecond: 100e6,
        minimumCNPInterval: .microseconds(50)
    )

    /// NVIDIA mlx5 firmware defaults as mlxconfig reports them.
    ///
    /// α in 1/1024 fixed point with G 1019, i.e. α ← (1019/1024)·α + 5/1024, so g = 5/1024;
    /// initial α 1023/1024; T = `rpg_time_reset` 300 µs; B = `rpg_byte_reset` 32767 B;
    /// F = `rpg_threshold` 1; R_AI = `rpg_ai_rate` 5 Mb/s; R_HAI = `rpg_hai_rate` 50 Mb/s;
    /// N = `min_time_between_cnps`, which the table gives as 2–4 µs: 4 µs here.
    /// The table leaves K and R_min blank; NVIDIA's DCQCN parameter page gives the α update
    /// period (`dce_tcp_rtt`) as 1 µs and `rpg_min_rate` as 1 Mb/s, used here.
    public static let mlx5Like = DCQCNParameters(
        alphaGain: 5.0 / 1024,
        initialAlpha: 1023.0 / 1024,
        alphaUpdatePeriod: .microseconds(1),
        rateIncreaseTimer: .microseconds(300),
        byteCounterBytes: 32_767,
        fastRecoveryThreshold: 1,
        additiveIncreaseBitsPerSecond: 5e6,
        hyperIncreaseBitsPerSecond: 50e6,
        minimumRateBitsPerSecond: 1e6,
        minimumCNPInterval: .microseconds(4)
    )
}

extension DCQCNParameters {
    /// The presets by the names scenario files and command lines use.
    ///
    /// ```swift
    /// let preset = DCQCNParameters.presets.first { $0.name == "mlx5Like" }?.parameters
    /// ```
    public static let presets: [(name: String, parameters: DCQCNParameters)] = [
        ("ns3FirstAuthorDefaults", .ns3FirstAuthorDefaults),
        ("ns3MixConfig", .ns3MixConfig),
        ("mlx5Like", .mlx5Like),
    ]
}
