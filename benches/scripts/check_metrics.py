#!/usr/bin/env python3
"""Checks lcodec-bench's PSNR, SSIM and MS-SSIM against independent implementations.

References:
  * PSNR  - scikit-image `peak_signal_noise_ratio(data_range=255)` (MSE over all RGB samples).
  * SSIM  - scikit-image `structural_similarity(gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, data_range=255, channel_axis=2)` (Wang et al. 2004 settings).
  * MS-SSIM - `pytorch_msssim.ms_ssim(data_range=255)`, per channel then averaged (what CompressAI uses),
            computed in float64.

For each Kodak image it makes a JPEG with cjpeg (4:2:0) at each quality, decodes it with djpeg,
runs the Rust `metrics` example on the pair and compares. Setup (once):

    python3 -m venv .venv-sweep
    .venv-sweep/bin/pip install numpy scikit-image pillow torch==2.11.0 pytorch_msssim

Run from the repository root:

    cargo build -p lcodec-bench --release --example metrics
    .venv-sweep/bin/python benches/scripts/check_metrics.py \
        --rust target/release/examples/metrics --kodak ../shared/data/images/kodak \
        --images kodim01,kodim05,kodim13,kodim23 --qualities 10,30,75 \
        --write benches/testdata/metrics_reference.csv

With --write it also saves the reference values, which `tests/metrics_reference.rs` checks
the Rust metrics against (when cjpeg/djpeg of the same libjpeg-turbo version are installed).
Exits 1 if any value differs by more than 0.01 dB (PSNR) or 0.001 (SSIM, MS-SSIM).
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

try:
    import torch
    from pytorch_msssim import ms_ssim as torch_ms_ssim
except Exception as e:  # torch is large; allow PSNR/SSIM checks without it
    print(f"note: pytorch_msssim unavailable ({e}); MS-SSIM not checked", file=sys.stderr)
    torch = None


def ref_metrics(a, b):
    psnr = peak_signal_noise_ratio(a, b, data_range=255)
    ssim = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=255, channel_axis=2)
    ms = None
    if torch is not None:
        ta = torch.from_numpy(a.astype(np.float64)).permute(2, 0, 1)[None]
        tb = torch.from_numpy(b.astype(np.float64)).permute(2, 0, 1)[None]
        ms = float(torch_ms_ssim(ta, tb, data_range=255, size_average=True))
    return psnr, ssim, ms


def libjpeg_version():
    out = subprocess.run(["cjpeg", "-version"], capture_output=True, text=True)
    return (out.stderr or out.stdout).strip().splitlines()[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rust", required=True, help="path to the built `metrics` example")
    ap.add_argument("--kodak", required=True)
    ap.add_argument("--images", default="kodim01,kodim05,kodim13,kodim23")
    ap.add_argument("--qualities", default="10,30,75")
    ap.add_argument("--write", help="CSV file to write the reference values to")
    args = ap.parse_args()

    rows = []
    worst = {"psnr": 0.0, "ssim": 0.0, "ms_ssim": 0.0}
    fail = False
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in args.images.split(","):
            src = Path(args.kodak) / f"{name}.png"
            ref = np.asarray(Image.open(src).convert("RGB"))
            ppm = tmp / f"{name}.ppm"
            Image.fromarray(ref).save(ppm)
            for q in args.qualities.split(","):
                jpg = tmp / f"{name}_q{q}.jpg"
                dec = tmp / f"{name}_q{q}.ppm"
                subprocess.run(["cjpeg", "-quality", q, "-sample", "2x2", "-outfile", str(jpg), str(ppm)], check=True)
                subprocess.run(["djpeg", "-pnm", "-outfile", str(dec), str(jpg)], check=True)
                out = np.asarray(Image.open(dec).convert("RGB"))
                psnr, ssim, ms = ref_metrics(ref, out)
                rust = json.loads(subprocess.run([args.rust, str(src), str(dec)], capture_output=True, text=True,
                                                 check=True).stdout)
                d = {"psnr": abs(rust["psnr"] - psnr), "ssim": abs(rust["ssim"] - ssim)}
                if ms is not None:
                    d["ms_ssim"] = abs(rust["ms_ssim"] - ms)
                for k, v in d.items():
                    worst[k] = max(worst[k], v)
                bad = d["psnr"] > 0.01 or d["ssim"] > 0.001 or d.get("ms_ssim", 0.0) > 0.001
                fail |= bad
                ms_s = f"{ms:.6f}" if ms is not None else "n/a"
                print(f"{name} q{q:>3} {jpg.stat().st_size:7d} B  PSNR ref {psnr:.4f} rust {rust['psnr']:.4f}  "
                      f"SSIM ref {ssim:.6f} rust {rust['ssim']:.6f}  MS-SSIM ref {ms_s} rust {rust['ms_ssim']:.6f}"
                      + ("  <-- MISMATCH" if bad else ""))
                rows.append((name, q, jpg.stat().st_size, psnr, ssim, ms))
    print("largest differences: " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
    if args.write:
        with open(args.write, "w") as f:
            f.write(f"# reference metrics from check_metrics.py (scikit-image, pytorch_msssim float64)\n")
            f.write(f"# JPEGs made with: cjpeg -quality Q -sample 2x2; djpeg -pnm ({libjpeg_version()})\n")
            f.write("image,quality,jpeg_bytes,psnr,ssim,ms_ssim\n")
            for name, q, size, psnr, ssim, ms in rows:
                f.write(f"{name},{q},{size},{psnr:.10f},{ssim:.10f},{'' if ms is None else f'{ms:.10f}'}\n")
        print(f"wrote {args.write}")
    sys.exit(1 if fail else 0)


if __name__ == "__main__":
    main()
