#!/usr/bin/python3
"""Compare every .npy under EXPECTED_DIR with the file at the same relative path under ACTUAL_DIR.

    compare_npy.py EXPECTED_DIR ACTUAL_DIR [--rtol 1e-3] [--atol 1e-4]

An element passes when |actual - expected| <= atol + rtol * |expected| (numpy.allclose's rule,
measured against the expected value); NaN passes only where the expected value is NaN too. A file
fails when it is missing, its shape or dtype differs, or any element fails. One line per file gives
the worst absolute error (and where), the worst relative error over elements with |expected| > atol,
and the worst error as a multiple of its tolerance. Exit status: 0 all match, 1 any failure,
2 bad arguments or nothing to compare. Files only in ACTUAL_DIR are ignored.
"""
import argparse
import os
import sys
from pathlib import Path

try:
    import numpy as np
except ImportError:  # Debian's numpy is in /usr/bin/python3; another python3 may be first on PATH
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])
    raise


def compare(expected_path, actual_path, rtol, atol):
    """Returns (ok, description)."""
    if not actual_path.is_file():
        return False, "missing"
    e = np.load(expected_path, allow_pickle=False)
    a = np.load(actual_path, allow_pickle=False)
    if e.shape != a.shape:
        return False, f"shape {list(a.shape)} != expected {list(e.shape)}"
    if e.dtype != a.dtype:
        return False, f"dtype {a.dtype} != expected {e.dtype}"
    if e.size == 0:
        return True, f"{e.dtype}{list(e.shape)} empty"
    if not np.issubdtype(e.dtype, np.inexact):  # integers and bools must match exactly
        bad = np.count_nonzero(a != e)
        return bad == 0, f"{e.dtype}{list(e.shape)} exact, {bad} differ"

    e64, a64 = e.astype(np.float64), a.astype(np.float64)
    close = np.isclose(a64, e64, rtol=rtol, atol=atol, equal_nan=True)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a64 - e64)
        diff[np.isnan(e64) & np.isnan(a64)] = 0.0
        diff[(e64 == a64)] = 0.0  # same-signed infinities
        diff[~close & ~np.isfinite(diff)] = np.inf  # NaN or inf against a number
        tol_multiple = diff / (atol + rtol * np.abs(e64))
        tol_multiple[diff == 0] = 0.0  # also when the tolerance is 0
        tol_multiple[~close & ~np.isfinite(tol_multiple)] = np.inf
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    significant = np.abs(e64) > atol
    max_rel = float(np.max(diff[significant] / np.abs(e64[significant]))) if significant.any() else 0.0
    bad = int(np.count_nonzero(~close))
    text = (f"{e.dtype}{list(e.shape)} max_abs {diff[worst]:.3g} at {tuple(int(i) for i in worst)} "
            f"(expected {e64[worst]:.6g}, got {a64[worst]:.6g}), max_rel {max_rel:.3g}, "
            f"worst {float(np.nanmax(tol_multiple)):.3g}x tolerance, {bad}/{e.size} out of tolerance")
    return bad == 0, text


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("expected", type=Path)
    parser.add_argument("actual", type=Path)
    parser.add_argument("--rtol", type=float, default=1e-3)
    parser.add_argument("--atol", type=float, default=1e-4)
    args = parser.parse_args()
    if not args.expected.is_dir() or not args.actual.is_dir():
        parser.error("EXPECTED_DIR and ACTUAL_DIR must be folders")
    files = sorted(p.relative_to(args.expected) for p in args.expected.rglob("*.npy"))
    if not files:
        print(f"no .npy files under {args.expected}", file=sys.stderr)
        return 2

    failures = 0
    for rel in files:
        try:
            ok, text = compare(args.expected / rel, args.actual / rel, args.rtol, args.atol)
        except (ValueError, OSError) as e:  # unreadable or not an array file
            ok, text = False, f"cannot read: {e}"
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {rel}: {text}")
    print(f"{len(files) - failures}/{len(files)} match (rtol {args.rtol:g}, atol {args.atol:g})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
