#!/usr/bin/env bash
# The libtorch tests, part of the README's test command: both image backends agree
# (transforms within tolerance, latents and scale indices exactly), torch-encode ->
# CPU-decode is bit-exact, training lowers the loss, checkpoints round-trip, and the
# text-llm torch backend round-trips and is refused elsewhere. libtorch comes from the PyPI
# torch wheel (scripts/setup-torch.sh); where it cannot be installed (no Python venv, no
# network) the script says so and skips, so the default build's tests still decide.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if ! command -v c++ >/dev/null && ! command -v g++ >/dev/null; then
    echo "test-torch: SKIPPED: no C++ compiler (torch-sys builds a C++ wrapper)" >&2
    exit 0
fi
if ! LIBTORCH="$(scripts/setup-torch.sh)"; then
    echo "test-torch: SKIPPED: libtorch could not be installed (see scripts/setup-torch.sh)" >&2
    exit 0
fi
export LIBTORCH
# The default target directory and the test profile: the dependencies built for
# `cargo test --workspace` are reused (the crates whose features differ get artifacts of
# their own beside the default ones), so CI's disk holds one build, not two.
cargo test -p lcodec-models -p lcodec-image -p lcodec-text \
    --features lcodec-models/torch,lcodec-image/torch,lcodec-text/torch
