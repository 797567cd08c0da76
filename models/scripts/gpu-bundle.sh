#!/usr/bin/env bash
# Build the CUDA training binary and assemble the folder carried to the GPU machine
# (device tool `run`, carry=["target-gpu"]). See models/TRAINING.md.
#
#   models/scripts/gpu-bundle.sh [BUNDLE_DIR] [CKPT_DIR]
#
# BUNDLE_DIR (default target-gpu, gitignored by /target-*) receives:
#   lcodec-train-cuda   stripped binary linked against libtorch_cuda (runs only there)
#   data/train/         training subset (fits the 64 MiB carry with a f16 checkpoint)
#   data/kodak/         4 Kodak images for the periodic evaluation
#   ckpt/               copy of CKPT_DIR when given (to --resume from)
# The binary is built only when missing (REBUILD=1 forces it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
B="${1:-target-gpu}"
CKPT="${2:-}"
DATA="${LCODEC_DATA:-/work/shared/data/images}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target-gpu-build}"
mkdir -p "$B"
if [[ ! -x "$B/lcodec-train-cuda" || "${REBUILD:-0}" == 1 ]]; then
    export LIBTORCH="$("$ROOT/scripts/setup-torch.sh")"
    # The `cuda` feature keeps libtorch_cuda.so linked (see models/build.rs).
    CARGO_TARGET_DIR="$TARGET" cargo build --release -p lcodec-models --features cuda --bin lcodec-train
    cp "$TARGET/release/lcodec-train" "$B/lcodec-train-cuda"
    strip "$B/lcodec-train-cuda"
    # Rebuild the CPU binary so $TARGET/release/lcodec-train runs here again (relink only).
    CARGO_TARGET_DIR="$TARGET" cargo build --release -p lcodec-models --features torch --bin lcodec-train
fi
if [[ ! -d "$B/data/train" ]]; then
    mkdir -p "$B/data/train" "$B/data/kodak"
    cp "$DATA"/train/urban100_half/*.png "$B/data/train/"
    cp "$DATA"/train/sun_hays80/*.jpg "$B/data/train/"
    cp "$DATA"/train/bsds500/train_*.jpg "$B/data/train/"
    cp "$DATA"/kodak/kodim0{1,4,7,9}.png "$B/data/kodak/"   # 2 landscape, 2 portrait
fi
if [[ -n "$CKPT" && "$(realpath "$CKPT")" == "$(realpath -m "$B/ckpt")" ]]; then
    echo "checkpoint already in $B/ckpt"
else
    rm -rf "$B/ckpt"
    if [[ -n "$CKPT" ]]; then
        mkdir -p "$B/ckpt"
        cp "$CKPT"/ckpt-part*.safetensors "$CKPT"/state.txt "$B/ckpt/"
    fi
fi
TOTAL=$(du -sb "$B" | cut -f1)
echo "bundle $B: $TOTAL bytes (carry limit 67108864)"
if (( TOTAL > 67108864 )); then
    echo "bundle too large for one carry: drop some data/train files" >&2
    exit 1
fi
