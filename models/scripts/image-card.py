#!/usr/bin/env python3
"""Writes the model card of a shipped image model from the Kodak sweep that measured it.

    models/scripts/image-card.py --name image-ckbd-v1 --weights models/weights/image-ckbd-v1.safetensors \
        --hash HEX --sweep DIR --state CKPT/state.txt --notes NOTES.md > models/weights/image-ckbd-v1.md

HEX is the weights hash as `lcodec info` prints it for a file made with the model; DIR is the
output of `lcodec sweep --codec image --data ../shared/data/images/kodak --quality 1,...,8
--peers jpeg,webp,avif --anchor jpeg`; NOTES.md is the hand-written part (training history,
limitations). The `| kodim23 |` rows are what `shipped_model_matches_its_card` checks.
Standard library only."""
import argparse
import csv
import json
import os
import struct
from collections import defaultdict

ap = argparse.ArgumentParser()
for a in ("--name", "--weights", "--hash", "--sweep", "--state", "--notes"):
    ap.add_argument(a, required=True)
args = ap.parse_args()

with open(args.weights, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
meta = header.pop("__metadata__", {})
params = 0
for t in header.values():
    k = 1
    for d in t["shape"]:
        k *= d
    params += k
state = dict(l.split("=", 1) for l in open(args.state).read().split() if "=" in l)

rows = list(csv.DictReader(open(os.path.join(args.sweep, "results.csv"))))
levels = defaultdict(list)
k23 = {}
for r in rows:
    if r["codec"] != "lcodec-image" or r["status"] != "ok":
        continue
    q = int(r["level"])
    levels[q].append(r)
    if r["file"] == "kodim23.png":
        k23[q] = (int(r["bytes"]), float(r["psnr"]))

summary = open(os.path.join(args.sweep, "summary.md")).read()
head = ""
if "## lcodec against each curve" in summary:
    head = summary[summary.find("## lcodec against each curve on psnr"):]
    head = head.split("\n## Inputs")[0]

lam = meta.get("lcodec.lambdas", "").split(",")
out = []
w = out.append
w(f"# {args.name}: lcodec's learned image model")
w("")
w(open(args.notes).read().strip())
w("")
w("## File")
w("")
w(f"- `{os.path.basename(args.weights)}`: {os.path.getsize(args.weights):,} bytes, {params:,} parameters "
  f"stored as {meta.get('lcodec.storage', '?')}; weights hash (XXH3-128, as `lcodec info` prints it): `{args.hash}`")
w(f"- architecture `{meta.get('lcodec.arch')}`: N = {meta.get('lcodec.n')}, M = {meta.get('lcodec.m')}, "
  f"{len(lam)} quality levels (one gain vector per λ)")
w(f"- training steps: {state.get('step')} (batch 4 of 256×256 crops)")
w("")
w("## Kodak (24 images), real `.lc` sizes, quality measured independently")
w("")
w("| quality | λ | bpp | PSNR (dB) | MS-SSIM |")
w("|---|---|---|---|---|")
for q in sorted(levels):
    rs = levels[q]
    avg = lambda k: sum(float(r[k]) for r in rs) / len(rs)
    w(f"| {q} | {lam[q-1] if q-1 < len(lam) else '?'} | {avg('bpp'):.4f} | {avg('psnr'):.3f} | {avg('ms_ssim'):.4f} |")
w("")
if head:
    w(head.strip().replace("## lcodec against each curve on", "### BD-rate against each peer on"))
    w("")
w("## kodim23, per level (checked by the test `shipped_model_matches_its_card`)")
w("")
w("| image | quality | bytes | PSNR (dB) |")
w("|---|---|---|---|")
for q in sorted(k23):
    b, p = k23[q]
    w(f"| kodim23 | {q} | {b} | {p:.3f} |")
print("\n".join(out))
