#!/usr/bin/env bash
# Train (or keep training) the shipped image model on this machine's CPU, in the
# background, resuming from the last checkpoint. See models/TRAINING.md, "(d) CPU training".
#
#   models/scripts/cpu-train.sh start [SECONDS]   # start or resume; stop cleanly after SECONDS (default: no limit)
#   models/scripts/cpu-train.sh status            # last log lines
#   models/scripts/cpu-train.sh stop              # stop at once (loses the steps since the last checkpoint)
#   models/scripts/cpu-train.sh finish STEPS OUT  # lr/10 for STEPS more steps from the main run, into OUT (the run to export)
#
# The main run lives in target-imgtrain/ckpt (gitignored): checkerboard N=96 M=128, 9 quality
# levels (the lowest, λ=0.0006, added at step 32,000 with `lcodec-train add-level`; a resumed
# run takes N, M and the λs from state.txt, so the values below only matter for a fresh
# start), batch 4 of 256x256 crops, Adam lr 5e-4, all of ../shared/data/images/train, eval on
# 2 Kodak images every 5000 steps. It resumes from target-imgtrain/ckpt/state.txt whenever that
# exists, so every session can add steps. `finish` never touches the main run: it resumes from
# it into OUT with the learning rate dropped 10x for the whole extra stretch.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
DIR=target-imgtrain
CK="$DIR/ckpt"
BIN="${CARGO_TARGET_DIR:-$ROOT/target-gpu-build}/release/lcodec-train"
DATA="${LCODEC_DATA:-/work/shared/data/images}"
LAMBDAS=0.0006,0.0018,0.0035,0.0067,0.013,0.025,0.0483,0.0932,0.18
build() {
    if [[ ! -x "$BIN" ]]; then
        export LIBTORCH="$("$ROOT/scripts/setup-torch.sh")"
        CARGO_TARGET_DIR="$(dirname "$(dirname "$BIN")")" \
            cargo build --release -p lcodec-models --features torch --bin lcodec-train
    fi
}
common=(--data "$DATA/train" --eval "$DATA/kodak" --eval-images 2 --batch 4 --crop 256
        --ckpt-every 1000 --log-every 200 --loaders 1 --threads 2)
case "${1:-status}" in
start)
    build
    mkdir -p "$DIR"
    args=(image --arch ckbd --n 96 --m 128 --lambdas "$LAMBDAS" --lr 5e-4 --steps 1000000
          --eval-every 5000 --time-limit "${2:-0}" --out "$CK" "${common[@]}")
    if [[ -f "$CK/state.txt" ]]; then
        # Checkpoints are written into the directory resumed from.
        args+=(--resume "$CK")
    fi
    nohup "$BIN" "${args[@]}" >>"$DIR/train.out" 2>&1 &
    echo "training in the background (pid $!); log: $DIR/train.out"
    ;;
status)
    tail -n 5 "$DIR/train.out"
    ;;
stop)
    pkill -f "$BIN image" || true
    ;;
finish)
    build
    steps="${2:?extra steps}"
    out="${3:?output checkpoint directory}"
    s=$(sed -n 's/^step=//p' "$CK/state.txt")
    total=$((s + steps))
    drop=$(python3 -c "print($s / $total)")
    "$BIN" image --arch ckbd --n 96 --m 128 --lambdas "$LAMBDAS" --resume "$CK" --out "$out" \
        --steps "$total" --lr 5e-4 --lr-drop-at "$drop" \
        --eval-every 0 "${common[@]}"
    ;;
*)
    echo "usage: $0 start [SECONDS] | status | stop | finish STEPS OUT" >&2
    exit 2
    ;;
esac
