#!/usr/bin/env bash
# Build the CUDA training binary and assemble the folder carried to the GPU machine
# (device tool `run`, carry=["target-gpu"]). See models/TRAINING.md.
#
#   models/scripts/gpu-bundle.sh [BUNDLE_DIR] [CKPT_DIR]
#
# BUNDLE_DIR (default target-gpu, gitignored by /target-*) receives:
#   lcodec-train-cuda   stripped binary linked against libtorch_cuda (runs only there)
#   train.sh            the training command (run on the GPU machine: bash target-gpu/train.sh)
#   data/train/         training subset (fits the 64 MiB carry with a f16 checkpoint)
#   data/kodak/         4 Kodak images for the periodic evaluation
#   ckpt/               copy of CKPT_DIR when given (train.sh then resumes from it)
# The binary is built only when missing (REBUILD=1 forces it). CKPT_RESERVE (bytes, default
# 21000000: the f16 checkpoint of the default checkerboard model, N=128 M=192) is kept free
# for the checkpoint: BSDS training images are left out until the bundle fits.
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
    RESERVE="${CKPT_RESERVE:-21000000}"
    mapfile -t BSDS < <(ls "$B"/data/train/train_*.jpg 2>/dev/null | sort -r)
    for f in "${BSDS[@]}"; do
        (( $(du -sb "$B" | cut -f1) + RESERVE <= 67108864 )) && break
        rm -f "$f"
    done
    echo "training images: $(ls "$B/data/train" | wc -l)"
fi
# The command run on the GPU machine (cwd: the repository copy; $OUT from the device tool).
# Environment knobs: ARCH (ckbd|mshp), STEPS, LR, TIME_LIMIT, BATCH, LAMBDAS; extra
# arguments are passed to lcodec-train. Resumes from ckpt/ when it holds a checkpoint.
cat > "$B/train.sh" <<'TRAIN'
#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")"
TORCH_LIB="$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib"
RESUME=()
if [[ -f ckpt/state.txt ]]; then RESUME=(--resume ckpt); fi
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true
LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ./lcodec-train-cuda image \
    --arch "${ARCH:-ckbd}" --lambdas "${LAMBDAS:-0.0018,0.0035,0.0067,0.013,0.025,0.0483,0.0932,0.18}" \
    --data data/train --eval data/kodak --eval-images 4 --eval-every 4000 \
    --device cuda --steps "${STEPS:-30000}" --batch "${BATCH:-16}" --crop 256 --lr "${LR:-3e-4}" \
    --ckpt-every 1000 --ckpt-half --log-every 200 --time-limit "${TIME_LIMIT:-510}" \
    --out "${OUT:-out}/ckpt" "${RESUME[@]}" "$@"
TRAIN
chmod +x "$B/train.sh"
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
