#!/usr/bin/env bash
# Uncertainty without an oracle (issue 10): every fit with default settings, data given as files
# (so SROT settings are chosen from held-out snapshots), simulator seeds not used in development.
#   bash benchmarks/uncertainty.sh [OUT]   (about 35 min on 2 CPU cores)
set -euo pipefail
OUT=${1:-benchmarks/results/uncertainty}
DATA=${SHARED_DATA:-../shared/data}
HEADS=${HEADS:-"point ensemble last_layer"}
B="vgfm-bayes bench --quiet --heads $HEADS"
$B --datasets simulator simulator_reweight --seeds 0 1 2 --out "$OUT/simulators"
$B --datasets "$DATA/benchmarks/simulation_gene_data.csv" "$DATA/benchmarks/dygen.csv" \
   --seeds 0 --hold-out none 1 2 3 --out "$OUT/gene_dyngen"
$B --datasets "$DATA/validation/emt.csv" --seeds 0 --hold-out 1 2 --out "$OUT/emt"
$B --datasets "$DATA/validation/bifurcation.csv" --seeds 0 --hold-out 1 2 3 4 5 6 \
   --out "$OUT/bifurcation"
