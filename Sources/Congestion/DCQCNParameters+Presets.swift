// Sources are those of /work/shared/reference/congestion-and-pfc.md; where that table leaves a
// value blank the comment says where the value came from instead. The DCQCN paper's own
// parameter table was not available to us, so none of these claims to be "the paper's".

extension DCQCNParameters {
    /// The defaults compiled into the first author's ns-3 simulator: the attribute defaults
    /// of `QbbNetDevice` in bobzhuyb/ns3-rdma (`src/point-to-point/model/qbb-net-device.cc`).
    ///
    /// g 1/16, K 55 µs, T 1500 µs, B 150 KB (150 000 B), F 5, R_AI 5 Mb/s, R_HAI 50 Mb/s,
    /// N 50 µs. Not in the reference table, read from the same file: R_min 100 Mb/s
    /// (`MinRate`), initial α 0.5 (the constructor), and the target-rate rule of
    /// `rpr_cnm_received` with `ClampTargetRate` and `ClampTargetRateAfterTimeInc` false: a cut
    /// sets R_T ← R_C only after a byte-counter increase (``TargetRateClamp/afterByteCounterIncrease``).
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
        minimumCNPInterval: .microseconds(50),
        targetRateClamp: .afterByteCounterIncrease
    )

    /// The settings of the same repository's experiment file, bobzhuyb/ns3-rdma
    /// `windows/ns-3-dev/x64/Release/mix/config.txt`, as `examples/tutorial/third.cc` reads it.
    ///
    /// g 1/256 (`DCTCP_GAIN 0.00390625`), K 55 µs, T 60 µs, F 5, R_AI 40 Mb/s, R_HAI 200 Mb/s,
    /// N 50 µs. B is `BYTE_COUNTER 300000000`: 300 MB, so the byte counter practically never
    /// fires (the reference table's "300 KB" misreads it). `CLAMP_TARGET_RATE 1`: every cut
    /// sets R_T ← R_C (``TargetRateClamp/everyCut``). The file does not set R_min or the
    /// initial α, so the code defaults apply: 100 Mb/s and 0.5. Its switch marking is
    /// ``ECNMarkingParameters/ns3MixConfig``.
    public static let ns3MixConfig = DCQCNParameters(
        alphaGain: 1.0 / 256,
        initialAlpha: 0.5,
        alphaUpdatePeriod: .microseconds(55),
        rateIncreaseTimer: .microseconds(60),
        byteCounterBytes: 300_000_000,
        fastRecoveryThreshold: 5,
        additiveIncreaseBitsPerSecond: 40e6,
        hyperIncreaseBitsPerSecond: 200e6,
        minimumRateBitsPerSecond: 100e6,
        minimumCNPInterval: .microseconds(50),
        targetRateClamp: .everyCut
    )

    /// NVIDIA mlx5 firmware defaults as mlxconfig reports them.
    ///
    /// α in 1/1024 fixed point with G 1019, i.e. α ← (1019/1024)·α + 5/1024, so g = 5/1024;
    /// initial α 1023/1024; T = `rpg_time_reset` 300 µs; B = `rpg_byte_reset` 32767 B;
    /// F = `rpg_threshold` 1; R_AI = `rpg_ai_rate` 5 Mb/s; R_HAI = `rpg_hai_rate` 50 Mb/s;
    /// N = `min_time_between_cnps`, which the table gives as 2–4 µs: 4 µs here.
    /// The table leaves K and R_min blank; NVIDIA's DCQCN parameter page gives the α update
    /// period (`dce_tcp_rtt`) as 1 µs and `rpg_min_rate` as 1 Mb/s, used here.
    /// Target rate: `clamp_tgt_rate` 0 and `clamp_tgt_rate_after_time_inc` 1, so a cut sets
    /// R_T ← R_C only when the rate rose since the previous cut (``TargetRateClamp/afterAnyIncrease``).
    /// F: the firmware's first event after a cut is a fast-recovery step (HPCC's model checks
    /// the stage before counting it); with F = 1 this type's first event is additive increase
    /// instead, which differs only by R_AI added to R_T.
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
        minimumCNPInterval: .microseconds(4),
        targetRateClamp: .afterAnyIncrease
    )
}

extension DCQCNParameters {
    /// ``mlx5Like``'s numbers under the rules of the one independent simulator we could build
    /// and run: the HPCC ns-3 simulator's model of Mellanox CX4 DCQCN
    /// (alibaba-edu/High-Precision-Congestion-Control, `simulation/src/point-to-point/model/rdma-hw.cc`).
    /// `tools/sim-fidelity` compares FabricSim with it on the shipped scenarios.
    ///
    /// - No byte counter, and the timer's stage alone picks the step
    ///   (``RateIncreaseStages/timerOnly``): `RateIncEventTimerMlx` is the model's only
    ///   increase event, and `RateIncEventMlx` does fast recovery while the stage is below F,
    ///   additive increase at F, hyper increase by R_HAI above it. With mlx5Like's B = 32 767 B
    ///   every 32 KB sent moves R_C halfway to a target that a run of cuts did not lower, so a
    ///   16:1 incast keeps overshooting into PFC (queue p50 1.5 MB); without it the same
    ///   incast settles. A byte counter merely too large to fire (B = 2^40 B, as this preset
    ///   had) is not the same: the paper's rule then never reaches hyper increase, so the
    ///   victim-flow scenario's victim crept up by R_AI = 5 Mb/s per 300 µs instead of probing
    ///   S1→S2 by R_HAI, and its queue's p99 from 5 ms on was 79 KB against ns-3's 134 KB.
    /// - R_T ← R_C only on a cut after a timer increase (`CheckRateDecreaseMlx` with
    ///   `CLAMP_TARGET_RATE 0`: no clamp `if (q->mlx.m_rpTimeStage == 0)`).
    /// - A CNP for every CE-marked packet (N = 0: `ReceiveUdp` sets the CNP flag on the ACK of
    ///   each marked packet), and the reaction point's periodic timing
    ///   (``rateDecreasePeriod`` 4 µs, `RATE_DECREASE_INTERVAL`): α rises by g in each 1 µs
    ///   period that saw a CNP, the rate is cut at most once per 4 µs. With N = 4 µs at the
    ///   notification point and α and a cut per CNP instead, α grew up to 4× slower under dense
    ///   marks: the 16:1 incast's start overshot to a queue p99 of 3.8 MB against ns-3's 2.6 MB,
    ///   and the victim-flow's flows evened out faster than ns-3's (slower A flow 9.2 against
    ///   8.5 Gb/s); with this timing 2.6 MB and 8.9 Gb/s (`tools/sim-fidelity`).
    ///
    /// Left as in this type: the CNP is a packet of its own, not a flag on an ACK (FabricSim
    /// sends no ACKs), and α starts at mlx5Like's 1023/1024 where HPCC sets 1.
    ///
    /// ```swift
    /// let rp = ReactionPoint(parameters: .hpccMellanoxModel, lineRateBitsPerSecond: 40e9)
    /// ```
    public static let hpccMellanoxModel: DCQCNParameters = {
        var parameters = DCQCNParameters.mlx5Like
        parameters.rateIncreaseStages = .timerOnly
        parameters.minimumCNPInterval = .zero
        parameters.rateDecreasePeriod = .microseconds(4)
        parameters.targetRateClamp = .afterTimerIncrease
        return parameters
    }()
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
        ("hpccMellanoxModel", .hpccMellanoxModel),
    ]
}
