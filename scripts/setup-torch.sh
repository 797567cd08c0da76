#!/usr/bin/env bash
# Install libtorch (CPU use) from the PyPI torch wheel into .venv-torch at the repo root,
# as described in /work/shared/TORCH.md. Idempotent. Prints the LIBTORCH path to use.
#
#   scripts/setup-torch.sh            # install (≈540 MB download, ~20 s)
#   export LIBTORCH=$(scripts/setup-torch.sh --print)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-torch"
TORCH_VERSION="${TORCH_VERSION:-2.11.0}"   # must match tch 0.24 and the GPU machine's torch

libtorch_dir() {
    local d
    d=$(ls -d "$VENV"/lib/python3*/site-packages/torch 2>/dev/null | head -n1 || true)
    echo "$d"
}

if [[ "${1:-}" != "--print" ]]; then
    if [[ -z "$(libtorch_dir)" || ! -f "$(libtorch_dir)/lib/libtorch_cpu.so" ]]; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --no-deps "torch==$TORCH_VERSION" \
            'nvidia-cuda-runtime==13.0.96.*' 'nvidia-cuda-cupti==13.0.85.*' >&2
    fi
fi
D="$(libtorch_dir)"
if [[ -z "$D" ]]; then
    echo "setup-torch: no torch in $VENV (run scripts/setup-torch.sh first)" >&2
    exit 1
fi
echo "$D"
