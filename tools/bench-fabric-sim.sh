#!/usr/bin/env bash
# Events per second of the fabric simulator, straight from a release build of fabric-sim:
# the three published scenarios, each stretched to 100 ms, with and without DCQCN.
# Usage: tools/bench-fabric-sim.sh [duration-ms]
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-100}"
swift build -c release --product fabric-sim >/dev/null
for scenario in scenarios/incast-16to1.json scenarios/staggered-2flows.json scenarios/victim-flow.json; do
    for variant in "" "--no-dcqcn"; do
        printf '%-34s %-12s ' "$(basename "$scenario")" "${variant:-DCQCN}"
        .build/release/fabric-sim run "$scenario" $variant --duration-milliseconds "$duration" --stats | grep '^Stats:'
    done
done
