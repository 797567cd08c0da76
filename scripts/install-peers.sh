#!/usr/bin/env bash
# Installs the peer codecs that `lcodec sweep` runs side by side with lcodec, from Debian
# (checked on Debian 12 "bookworm"). Run as root, or with sudo available.
#
#   scripts/install-peers.sh            # everything
#   scripts/install-peers.sh --minimal  # image + lossless peers only (no ffmpeg, audio, draco)
#
# Tool            package               used by `lcodec sweep --peers`
# cjpeg/djpeg     libjpeg-turbo-progs   jpeg
# cwebp/dwebp     webp                  webp
# avifenc/avifdec libavif-bin           avif
# cjxl/djxl       libjxl-tools          jxl
# gzip, bzip2, xz gzip, bzip2, xz-utils gzip, bzip2, xz
# zstd            zstd                  zstd, zstd-ultra
# brotli          brotli                brotli
# lz4             lz4                   lz4
# flac            flac                  flac
# opusenc/opusdec opus-tools            opus
# ffmpeg          ffmpeg (x264, x265)   x264, x265
# draco_encoder   draco                 draco (LiDAR)
# LASzip is not a Debian tool: the LiDAR codec uses the `laz` crate (crates.io) instead.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

PKGS=(libjpeg-turbo-progs webp libavif-bin libjxl-tools gzip bzip2 xz-utils zstd brotli lz4)
if [ "${1:-}" != "--minimal" ]; then
    PKGS+=(flac opus-tools ffmpeg draco)
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${PKGS[@]}"

echo "installed peer tools:"
for t in cjpeg djpeg cwebp dwebp avifenc avifdec cjxl djxl gzip bzip2 xz zstd brotli lz4 \
         flac opusenc opusdec ffmpeg draco_encoder draco_decoder; do
    if command -v "$t" >/dev/null 2>&1; then
        printf '  %-14s %s\n' "$t" "$(command -v "$t")"
    else
        printf '  %-14s (missing)\n' "$t"
    fi
done
