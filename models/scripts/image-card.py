#!/usr/bin/env python3
"""Writes the model card of a shipped image model set from the Kodak sweep that measured it.

    models/scripts/image-card.py --name image-ckbd-v4 \
        --weights models/weights/image-ckbd-v4.safetensors models/weights/image-ckbd-v4-top.safetensors \
        --hash HEX1 HEX2 --state CKPT1/state.txt CKPT2/state.txt \
        --ladder models/weights/image-ladder.txt --sweep DIR --notes NOTES.md > models/weights/image-ckbd-v4.md

One --weights / --hash / --state per file of the set (a single model needs no --ladder).
HEX is the weights hash as `lcodec info` prints it for a file made with the model; DIR is the
output of `lcodec sweep --codec image --data ../shared/data/images/kodak --quality 1,...,9
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
for a in ("--name", "--sweep", "--notes"):
    ap.add_argument(a, required=True)
for a in ("--weights", "--hash", "--state"):
    ap.add_argument(a, required=True, nargs="+")
ap.add_argument("--ladder")
args = ap.parse_args()
if not len(args.weights) == len(args.hash) == len(args.state):
    ap.error("one --hash and one --state per --weights file")
if len(args.weights) > 1 and not args.ladder:
    ap.error("several weights files need --ladder")


def read_model(path, state_path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    meta = header.pop("__metadata__", {})
    params = 0
    for t in header.values():
        k = 1
        for d in t["shape"]:
            k *= d
        params += k
    state = dict(l.split("=", 1) for l in open(state_path).read().split() if "=" in l)
    return meta, params, state


models = {}
for wpath, h, st in zip(args.weights, args.hash, args.state):
    stem = os.path.basename(wpath).rsplit(".", 1)[0]
    models[stem] = (wpath, h) + read_model(wpath, st)
# quality -> (model id, 1-based level, residual step or None)
if args.ladder:
    ladder = {}
    for line in open(args.ladder):
        f = line.split("#")[0].split()
        if f:
            ladder[int(f[0])] = (f[1], int(f[2]), f[3] if len(f) > 3 else None)
else:
    only = next(iter(models))
    lam = models[only][2].get("lcodec.lambdas", "").split(",")
    ladder = {q: (only, q, None) for q in range(1, len(lam) + 1)}

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

def rung_lambda(q):
    m, lv, _ = ladder.get(q, (None, 0, None))
    if m not in models:
        return "?"
    lam = models[m][2].get("lcodec.lambdas", "").split(",")
    return lam[lv - 1] if 0 < lv <= len(lam) else "?"


out = []
w = out.append
w(f"# {args.name}: lcodec's learned image model")
w("")
w(open(args.notes).read().strip())
w("")
w("## Files" if len(models) > 1 else "## File")
w("")
for stem, (wpath, h, meta, params, state) in models.items():
    lam = meta.get("lcodec.lambdas", "").split(",")
    serves = sorted(q for q, (m, _, _) in ladder.items() if m == stem)
    w(f"- `{os.path.basename(wpath)}`: {os.path.getsize(wpath):,} bytes, {params:,} parameters "
      f"stored as {meta.get('lcodec.storage', '?')}; weights hash (XXH3-128, as `lcodec info` prints it): `{h}`;")
    w(f"  architecture `{meta.get('lcodec.arch')}`: N = {meta.get('lcodec.n')}, M = {meta.get('lcodec.m')}, "
      f"{len(lam)} levels (λ = {', '.join(lam)}); training steps: {state.get('step')} (batch 4 of 256×256 crops); "
      f"serves --quality {', '.join(map(str, serves))}")
if args.ladder:
    w(f"- `{os.path.basename(args.ladder)}`: which model and level each `--quality` uses, and the "
      "quantiser step of the residual layer where there is one")
w("")
w("## Kodak (24 images), real `.lc` sizes, quality measured independently")
w("")
w("| quality | model, level (+ residual step) | λ | bpp | PSNR (dB) | MS-SSIM |")
w("|---|---|---|---|---|---|")
for q in sorted(levels):
    rs = levels[q]
    avg = lambda k: sum(float(r[k]) for r in rs) / len(rs)
    m, lv, res = ladder.get(q, ("?", 0, None))
    rung = f"{m}, {lv}" + (f" + residual {res}" if res else "")
    w(f"| {q} | {rung} | {rung_lambda(q)} | {avg('bpp'):.4f} | {avg('psnr'):.3f} | {avg('ms_ssim'):.4f} |")
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
