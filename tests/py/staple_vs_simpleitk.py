"""Cross-checks dpersona's STAPLE against SimpleITK's STAPLEImageFilter (ITK's reference EM).

Usage: staple_vs_simpleitk.py CASES.json

CASES.json is written by train/tests/baselines_fusion.rs: a list of cases, each with the rater
masks (`shape` = [R, ...spatial], flat 0/1 `masks`), the raters `present`, and dpersona's
results (`w`, `sensitivity`, `specificity` over all R raters, NaN for missing ones,
`iterations`). SimpleITK gets only the present raters' masks as images of the case's spatial
shape (2D slice or 3D volume). Exits non-zero on any mismatch beyond 1e-6.
"""
import json
import math
import sys

import numpy as np
import SimpleITK as sitk

TOL = 1e-6


def main() -> int:
    cases = json.load(open(sys.argv[1]))
    failures = 0
    for k, case in enumerate(cases):
        shape = case["shape"]
        masks = np.asarray(case["masks"], dtype=np.uint8).reshape(shape)
        present = case["present"]
        raters = [r for r in range(shape[0]) if present[r]]
        images = [sitk.GetImageFromArray(masks[r]) for r in raters]
        f = sitk.STAPLEImageFilter()
        f.SetForegroundValue(1.0)
        out = f.Execute(images)
        w_ref = sitk.GetArrayFromImage(out).astype(np.float64).ravel()
        sens_ref = list(f.GetSensitivity())
        spec_ref = list(f.GetSpecificity())
        w = np.asarray(case["w"], dtype=np.float64)
        dw = float(np.max(np.abs(w - w_ref)))
        sens = [case["sensitivity"][r] for r in raters]
        spec = [case["specificity"][r] for r in raters]
        dp = max(abs(a - b) for a, b in zip(sens, sens_ref))
        dq = max(abs(a - b) for a, b in zip(spec, spec_ref))
        missing_ok = all(
            case["sensitivity"][r] is None or math.isnan(case["sensitivity"][r])
            for r in range(shape[0])
            if not present[r]
        )
        it_ref = f.GetElapsedIterations()
        ok = (
            dw <= TOL
            and dp <= TOL
            and dq <= TOL
            and missing_ok
            and len(w) == w_ref.size
            and case["iterations"] == it_ref
        )
        print(
            f"case {k} ({case['name']}): shape {shape} present {present} max|dW| {dw:.3e} "
            f"max|dp| {dp:.3e} max|dq| {dq:.3e} iterations ours {case['iterations']} itk {it_ref} "
            f"{'OK' if ok else 'MISMATCH'}"
        )
        if not ok:
            failures += 1
    if failures:
        print(f"{failures} of {len(cases)} cases differ from SimpleITK", file=sys.stderr)
        return 1
    print(f"all {len(cases)} cases match SimpleITK to {TOL}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
