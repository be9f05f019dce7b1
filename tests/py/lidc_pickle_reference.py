"""Real LIDC-style pickles written with pickle.dump of real numpy arrays, and the independent
check of what `dpersona ingest lidc-pickle` made of them (numpy, sklearn, polars, pyarrow).

Usage:
  lidc_pickle_reference.py write DIR     fixtures (see below) into DIR
  lidc_pickle_reference.py check PICKLE OUT PROTOCOL [BAD_KEY ...]
      every row of OUT against pickle.load(PICKLE): image (uint8 -> float32 /255, float
      kept; read by pyarrow and by polars, bit for bit; the shards' image column chunks
      dictionary-encoded when every image is uint8, plain when every one is float),
      the 4 masks, patient id (series_uid before the first `_`), fold and split
      (numpy seed 1337 shuffle + sklearn KFold(4), PROTOCOL image|patient); the BAD_KEYs
      must be in rejects.parquet (naming the file and the key) and nowhere else.
  lidc_pickle_reference.py folds N [N ...]
      JSON {N: {patients, image, patient}}: each item's fold under both protocols, with
      patients drawn by numpy (sklearn for N >= 4; below, sklearn refuses and the same
      contiguous-chunk rule is applied by hand).
  lidc_pickle_reference.py malicious DIR MARKER
      pickles that would run os.system / posix.system / builtins.eval / subprocess.Popen
      (each would create MARKER if executed).

Fixtures written by `write`:
  mm_p{2,3,4,5}.pkl   MedicalMatting style: uint8 image 0..255, 4 masks (uint8, bool,
                      Fortran-ordered, int64, float64), series_uid, alpha (array + numpy
                      scalar); 23 items of 6 patients; keys are str.
  knegt_p4.pkl        Knegt style: float32 image in [0,1] (some big-endian, some float64),
                      4 uint8 masks; 17 items; int keys; 8 items carry an
                      extra `pixel_spacing` key.
  old_p2.pkl/old_p5.pkl  mm-style pickles whose globals use numpy 1's `numpy.core` names.
  bad_p4.pkl          9 items, 6 of them bad: missing `masks`, 3 masks, a mask holding
                      2, a NaN image, a 64x64 image, a mask of another shape.
"""
import io
import json
import pickle
import pickletools
import sys
import warnings
from pathlib import Path

import numpy as np


def mm_items(n=23, n_patients=6, seed=7):
    rng = np.random.default_rng(seed)
    items = {}
    for i in range(n):
        p = int(rng.integers(0, n_patients))
        img = rng.integers(0, 256, (128, 128), dtype=np.uint8)
        if i % 5 == 0:
            img[0, 0], img[-1, -1] = 0, 255
        masks = []
        for r in range(4):
            m = (rng.random((128, 128)) < 0.1 * (r + 1)).astype(np.uint8)
            kind = (i + r) % 5
            if kind == 1:
                m = m.astype(bool)
            elif kind == 2:
                m = np.asfortranarray(m)
            elif kind == 3:
                m = m.astype(np.int64)
            elif kind == 4:
                m = m.astype(">f8")
            masks.append(m)
        if i % 3 == 1:
            img = np.asfortranarray(img)
        item = {
            "image": img,
            "masks": masks,
            "series_uid": f"LIDC-IDRI-{p:04d}_slice{i}_nodule{i % 3}",
            "alpha": (rng.random((128, 128)) * 255).astype(np.uint8) if i % 2 else np.float32(0.5),
        }
        items[f"LIDC-IDRI-{p:04d}_{i}"] = item
    return items


def knegt_items(n=17, seed=11):
    rng = np.random.default_rng(seed)
    items = {}
    for i in range(n):
        img = rng.random((128, 128), dtype=np.float32)
        img[0, 0], img[1, 1] = 0.0, 1.0
        if i % 4 == 1:
            img = img.astype(">f4")
        elif i % 4 == 2:
            img = rng.random((128, 128))  # float64
        elif i % 4 == 3:
            img = np.asfortranarray(img)
        masks = [(rng.random((128, 128)) < 0.2).astype(np.uint8) for _ in range(4)]
        items[1000 + i] = {"image": img, "masks": masks, "series_uid": f"{i // 3:04d}_{i}"}
        if i % 2:
            items[1000 + i]["pixel_spacing"] = 0.7  # a key the reader must name, not drop silently
    return items


def bad_items():
    items = mm_items(9, 3, seed=3)
    keys = list(items)
    del items[keys[1]]["masks"]
    items[keys[2]]["masks"] = items[keys[2]]["masks"][:3]
    items[keys[3]]["masks"][2] = items[keys[3]]["masks"][2].astype(np.uint8) * 2
    items[keys[4]]["image"] = np.full((128, 128), np.nan, np.float32)
    items[keys[5]]["image"] = items[keys[5]]["image"][:64, :64].copy()
    items[keys[7]]["masks"][0] = np.zeros((128, 64), np.uint8)
    return items, [keys[i] for i in (1, 2, 3, 4, 5, 7)]


def old_names(data):
    """The same pickle with numpy 1's `numpy.core...` globals, rewritten opcode by opcode
    (FRAMEs dropped, they are optional; SHORT_BINUNICODE lengths recomputed)."""
    out = io.BytesIO()
    ops = list(pickletools.genops(data))
    for k, (op, arg, pos) in enumerate(ops):
        end = ops[k + 1][2] if k + 1 < len(ops) else len(data)
        raw = data[pos:end]
        if op.name == "FRAME":
            continue
        if op.name == "GLOBAL" and arg.startswith("numpy._core."):
            mod, name = arg.split(" ")
            raw = b"c" + mod.replace("numpy._core.", "numpy.core.").encode() + b"\n" + name.encode() + b"\n"
        if op.name == "SHORT_BINUNICODE" and arg.startswith("numpy._core."):
            s = arg.replace("numpy._core.", "numpy.core.").encode()
            raw = b"\x8c" + bytes([len(s)]) + s
        out.write(raw)
    new = out.getvalue()
    assert b"numpy._core" not in new and b"numpy.core." in new
    return new


def write(d):
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    mm = mm_items()
    for p in (2, 3, 4, 5):
        (d / f"mm_p{p}.pkl").write_bytes(pickle.dumps(mm, protocol=p))
    (d / "knegt_p4.pkl").write_bytes(pickle.dumps(knegt_items(), protocol=4))
    for p in (2, 5):
        data = old_names(pickle.dumps(mm, protocol=p))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core is deprecated
            assert pickle.loads(data).keys() == mm.keys()
        (d / f"old_p{p}.pkl").write_bytes(data)
    bad, _ = bad_items()
    (d / "bad_p4.pkl").write_bytes(pickle.dumps(bad, protocol=4))
    print(f"wrote fixtures to {d}")


def shuffled(n):
    np.random.seed(1337)
    idx = np.arange(n)
    np.random.shuffle(idx)
    return idx


def kfold_tests(n):
    """sklearn KFold(4, shuffle=False) test positions per fold (by hand below 4)."""
    if n >= 4:
        from sklearn.model_selection import KFold

        return [test for _, test in KFold(n_splits=4, shuffle=False).split(np.arange(n))]
    return [np.arange(n)[f:f + 1] for f in range(4)]


def authors_folds(patients, unit):
    n = len(patients)
    if unit == "image":
        idx = shuffled(n)
        fold = np.zeros(n, int)
        for f, test in enumerate(kfold_tests(n)):
            fold[idx[test]] = f
        return fold.tolist()
    ids = list(dict.fromkeys(patients))
    idx = shuffled(len(ids))
    pf = {}
    for f, test in enumerate(kfold_tests(len(ids))):
        for t in idx[test]:
            pf[ids[t]] = f
    return [pf[p] for p in patients]


def folds(ns):
    out = {}
    for n in ns:
        rng = np.random.default_rng(n)
        patients = [f"P{int(x)}" for x in rng.integers(0, max(1, (n + 2) // 3), n)]
        out[n] = {
            "patients": patients,
            "image": authors_folds(patients, "image"),
            "patient": authors_folds(patients, "patient"),
        }
    print(json.dumps(out))


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(pickle_path, out, protocol, bad_keys):
    import polars as pl

    with open(pickle_path, "rb") as f:
        items = pickle.load(f)
    keys = [str(k) for k in items]
    patients = [str(v["series_uid"]).split("_")[0] if "series_uid" in v else str(k) for k, v in items.items()]
    want_fold = dict(zip(keys, authors_folds(patients, protocol)))
    out = Path(out)
    man = pl.read_parquet(out / "manifest.parquet")
    got = {r["study_id"]: r for r in man.iter_rows(named=True)}
    if set(got) != set(keys) - set(bad_keys):
        fail(f"manifest studies {sorted(got)} != good keys {sorted(set(keys) - set(bad_keys))}")
    for k, r in got.items():
        f = want_fold[k]
        if r["fold"] != f or r["split"] != ("test" if f == 0 else "train"):
            fail(f"{k}: fold/split {r['fold']}/{r['split']}, numpy+sklearn say {f}")
    if bad_keys:
        rej = pl.read_parquet(out / "rejects.parquet")
        rj = {r["study_id"]: r for r in rej.iter_rows(named=True)}
        if set(rj) != set(bad_keys):
            fail(f"rejects {sorted(rj)} != {sorted(bad_keys)}")
        for k, r in rj.items():
            if Path(r["file"]).name != Path(pickle_path).name or f"`{k}`" not in r["reason"]:
                fail(f"reject of {k} names {r['file']}: {r['reason']}")
            print(f"rejected {k}: {r['reason']}")
    import pyarrow.parquet as pq

    by_key = {str(kk): v for kk, v in items.items()}
    dtypes = {np.asarray(v["image"]).dtype.kind for k, v in by_key.items() if k in got}

    def want_image(k):
        img = np.asarray(by_key[k]["image"])
        want = img.astype(np.float32) / np.float32(255) if img.dtype == np.uint8 else img.astype(np.float32)
        return img.dtype, want

    rows = 0
    for shard in sorted((out / "shards").glob("shard-*.parquet")):
        # pyarrow reads the image column bit for bit as numpy computes it, as polars must
        # below; uint8 crops over 255 (at most 256 values) are dictionary-encoded, float
        # crops stored plainly.
        t = pq.read_table(shard, columns=["study_id", "image"])
        for k, got_img in zip(t.column("study_id").to_pylist(), t.column("image").to_pylist()):
            dtype, want = want_image(k)
            got_img = np.asarray(got_img, np.float32).reshape(128, 128)
            if not np.array_equal(got_img.view(np.uint32), want.view(np.uint32)):
                fail(f"{k}: image read by pyarrow differs from numpy ({dtype})")
        meta = pq.ParquetFile(shard).metadata
        leaf = [meta.schema.column(i).path for i in range(len(meta.schema))].index("image.list.item")
        for g in range(meta.num_row_groups):
            c = meta.row_group(g).column(leaf)
            dictionary = c.has_dictionary_page and "RLE_DICTIONARY" in c.encodings
            if dtypes == {"u"} and not dictionary:
                fail(f"{shard.name} row group {g}: uint8 images not dictionary-encoded ({c.encodings})")
            if dtypes == {"f"} and dictionary:
                fail(f"{shard.name} row group {g}: float images dictionary-encoded")
        for r in pl.read_parquet(shard).iter_rows(named=True):
            k = r["study_id"]
            item = by_key[k]
            dtype, want = want_image(k)
            got_img = np.asarray(r["image"], np.float32).reshape(128, 128)
            if not np.array_equal(got_img.view(np.uint32), want.view(np.uint32)):
                fail(f"{k}: image read by polars differs from numpy ({dtype})")
            bits = np.unpackbits(np.frombuffer(r["masks"], np.uint8))[: 4 * 128 * 128].reshape(4, 128, 128)
            want_m = np.stack([np.asarray(m).astype(np.uint8) for m in item["masks"]])
            if not np.array_equal(bits, want_m):
                fail(f"{k}: masks differ")
            if r["patient_id"] != str(item["series_uid"]).split("_")[0]:
                fail(f"{k}: patient {r['patient_id']}")
            if r["height"] != 128 or r["channels"] != 1 or r["slice_index"] != 0:
                fail(f"{k}: geometry {r['height']} {r['channels']} {r['slice_index']}")
            rows += 1
    if rows != len(got):
        fail(f"{rows} rows for {len(got)} studies")
    print(f"ok: {rows} rows of {pickle_path} match numpy (images read by pyarrow and polars, "
          f"dtypes {sorted(dtypes)}); folds ({protocol}) match numpy+sklearn")


def malicious(d, marker):
    import os
    import subprocess

    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    cmd = f"touch {marker}"

    class Sys:
        def __reduce__(self):
            return (os.system, (cmd,))

    class Eval:
        def __reduce__(self):
            return (eval, (f"open({marker!r}, 'w')",))

    class Popen:
        def __reduce__(self):
            return (subprocess.Popen, (["touch", str(marker)],))

    (d / "posix_system.pkl").write_bytes(pickle.dumps({"a": Sys()}, protocol=4))
    (d / "eval.pkl").write_bytes(pickle.dumps({"a": Eval()}, protocol=4))  # 2 names __builtin__
    (d / "popen.pkl").write_bytes(pickle.dumps({"a": Popen()}, protocol=5))
    # Hand-written protocol-2 pickle naming `os.system` itself, as old exploits do.
    (d / "os_system.pkl").write_bytes(b"\x80\x02cos\nsystem\nX" + len(cmd).to_bytes(4, "little") + cmd.encode() + b"\x85R.")
    print(f"wrote malicious pickles to {d}")


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "write":
        write(sys.argv[2])
    elif what == "check":
        check(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    elif what == "folds":
        folds([int(a) for a in sys.argv[2:]])
    elif what == "malicious":
        malicious(sys.argv[2], sys.argv[3])
    else:
        fail(f"unknown command {what}")
