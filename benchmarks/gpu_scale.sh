#!/usr/bin/env bash
# Scale benchmark on one GPU (issue 4, item 5), sized to finish inside ONE 8-minute device call:
# 1k, 10k and 100k cells per time point, 4 time points, 2-D Gaussian mixture, point head trained
# end to end with the zoo's step counts (1000 warm-up, 40 joint), reference widths 128 x 3.
#
#   bash benchmarks/gpu_scale.sh [OUTDIR]         # on the device machine; OUTDIR default $OUT
#
# Choices made for the GPU (all through FitConfig, nothing GPU-specific in the package):
# - mini-batch SROT with blocks of 4096 source cells (a 4096 x 4096 float64 block is ~130 MB and
#   well within an H200's memory; larger blocks mean less mini-batch bias),
# - Sinkhorn training W1 (stays on the device; POT's exact EMD runs on the CPU),
# - evaluation W1 exact where it fits, a mini-batch estimate beyond (stated in the JSON).
# Every size runs in its own process; the whole run is capped at TIME_LIMIT seconds so a slow
# size cannot eat the call, and whatever finished is still written.
#
# Overrides (environment): DEVICE (cuda), SIZES ("1000 10000 100000"), WARMUP (1000), JOINT (40),
# SROT_BATCH (4096), FIT_W1 (sinkhorn), HIDDEN ("128 128 128"), TIME_LIMIT (450), PYTHON.
# CPU smoke test:  DEVICE=cpu SIZES="200 400" WARMUP=5 JOINT=2 SROT_BATCH=128 \
#                  bash benchmarks/gpu_scale.sh /tmp/gpu_smoke
set -euo pipefail

OUTDIR="${1:-${OUT:-benchmarks/results}}"
DEVICE="${DEVICE:-cuda}"
SIZES="${SIZES:-1000 10000 100000}"
WARMUP="${WARMUP:-1000}"
JOINT="${JOINT:-40}"
SROT_BATCH="${SROT_BATCH:-4096}"
FIT_W1="${FIT_W1:-sinkhorn}"
HIDDEN="${HIDDEN:-128 128 128}"
TIME_LIMIT="${TIME_LIMIT:-450}"
PYTHON="${PYTHON:-python}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

mkdir -p "$OUTDIR"
"$PYTHON" - "$DEVICE" <<'EOF'
import sys, torch
dev = sys.argv[1]
if dev.startswith("cuda"):
    if not torch.cuda.is_available():
        sys.exit("gpu_scale.sh: DEVICE=cuda but torch sees no GPU (torch %s)" % torch.__version__)
    print("gpu_scale.sh: torch", torch.__version__, "on", torch.cuda.get_device_name(), flush=True)
else:
    print("gpu_scale.sh: torch", torch.__version__, "on", dev, flush=True)
EOF

# scale.py writes its JSON / Markdown after every size, so a size cut off by the limit keeps the
# earlier sizes' numbers
# shellcheck disable=SC2086
timeout --signal=INT "$TIME_LIMIT" "$PYTHON" "$HERE/scale.py" \
  --device "$DEVICE" --sizes $SIZES --dim 2 --times 4 \
  --warmup-steps "$WARMUP" --joint-steps "$JOINT" --hidden $HIDDEN \
  --srot-batch "$SROT_BATCH" --fit-w1 "$FIT_W1" \
  --size-timeout "$TIME_LIMIT" \
  --out "$OUTDIR/scale_${DEVICE%%:*}.json" --md "$OUTDIR/scale_${DEVICE%%:*}.md"
