#!/usr/bin/env python3
"""BD-rate between two evaluations in lcodec-train logs (the `eval step=S q=.. bpp_real=..
psnr_real=..` lines): how many % more (+) or fewer (-) bits run B needs than run A for the
same PSNR, over the PSNR range both cover (cubic fit of log-rate against PSNR).

    models/scripts/bd-evals.py A.log STEP_A B.log STEP_B
"""
import math
import re
import sys


def points(path, step):
    pts = {}
    pat = re.compile(r"eval step=(\d+) q=(\d+) .*bpp_real=([\d.]+) psnr_real=([\d.]+)")
    for line in open(path, encoding="utf-8"):
        m = pat.search(line)
        if m and int(m.group(1)) == step:
            pts[int(m.group(2))] = (float(m.group(3)), float(m.group(4)))
    if len(pts) < 2:
        sys.exit(f"{path}: fewer than 2 eval points at step {step}")
    return [pts[k] for k in sorted(pts)]


def polyfit(xs, ys, deg):
    """Least-squares polynomial coefficients c[0] + c[1] x + ... (normal equations)."""
    n = deg + 1
    a = [[sum(x ** (i + j) for x in xs) for j in range(n)] for i in range(n)]
    b = [sum(y * x**i for x, y in zip(xs, ys)) for i in range(n)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[piv], b[col], b[piv] = a[piv], a[col], b[piv], b[col]
        for r in range(n):
            if r != col:
                f = a[r][col] / a[col][col]
                a[r] = [u - f * v for u, v in zip(a[r], a[col])]
                b[r] -= f * b[col]
    return [b[i] / a[i][i] for i in range(n)]


def mean_over(c, lo, hi):
    """Mean of the polynomial c over [lo, hi]."""
    prim = lambda x: sum(ci * x ** (i + 1) / (i + 1) for i, ci in enumerate(c))
    return (prim(hi) - prim(lo)) / (hi - lo)


def bd_rate(a, b):
    # Centre PSNR for a well-conditioned fit.
    mid = sum(p[1] for p in a + b) / len(a + b)
    pa, ra = [p[1] - mid for p in a], [math.log(p[0]) for p in a]
    pb, rb = [p[1] - mid for p in b], [math.log(p[0]) for p in b]
    deg = min(3, len(a) - 1, len(b) - 1)
    fa, fb = polyfit(pa, ra, deg), polyfit(pb, rb, deg)
    lo, hi = max(min(pa), min(pb)), min(max(pa), max(pb))
    return (math.exp(mean_over(fb, lo, hi) - mean_over(fa, lo, hi)) - 1) * 100


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    a = points(sys.argv[1], int(sys.argv[2]))
    b = points(sys.argv[3], int(sys.argv[4]))
    for i, (x, y) in enumerate(zip(a, b)):
        print(f"level {i + 1}: {x[0]:.4f} bpp {x[1]:.3f} dB -> {y[0]:.4f} bpp {y[1]:.3f} dB")
    print(f"BD-rate (PSNR) B vs A: {bd_rate(a, b):+.2f} %")


if __name__ == "__main__":
    main()
