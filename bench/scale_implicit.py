#!/usr/bin/python3
"""The baseline of bench/scale.sh: what a user of the best Python library does
to get the same model out of the database. Reads (user_id bigint, item_id
bigint, weight real) rows as a binary COPY on stdin, fits implicit's ALS
(built from source outside the repository; its path in IMPLICIT_DIR) with our
defaults, and writes the user and item factors as binary COPY files for
`COPY ... (id bigint, factors real[]) FROM ... (FORMAT binary)`. Prints the
seconds of each step as `step seconds` lines.

    psql -c "COPY (SELECT user_id, item_id, weight FROM t) TO STDOUT (FORMAT binary)" |
        IMPLICIT_DIR=... python3 bench/scale_implicit.py FACTORS ITERATIONS THREADS OUTDIR
"""
import os
import sys
import time

factors, iterations, threads, outdir = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
os.environ["OPENBLAS_NUM_THREADS"] = "1"  # implicit runs its own threads
sys.path.insert(0, os.environ["IMPLICIT_DIR"])
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from implicit.cpu.als import AlternatingLeastSquares  # noqa: E402

t0 = time.perf_counter()
raw = sys.stdin.buffer.read()
# binary COPY: 19-byte header, then per row int16 field count and (int32 length, value) x 3, then int16 -1
row = np.dtype([("n", ">i2"), ("l1", ">i4"), ("user", ">i8"), ("l2", ">i4"), ("item", ">i8"), ("l3", ">i4"), ("w", ">f4")])
rows = np.frombuffer(raw, dtype=row, offset=19, count=(len(raw) - 21) // row.itemsize)
if len(rows) and (rows["n"] != 3).any():
    sys.exit("unexpected COPY layout (NULLs?)")
t1 = time.perf_counter()
print(f"read {t1 - t0:.2f}", flush=True)

user_ids, u = np.unique(rows["user"].astype(np.int64), return_inverse=True)
item_ids, i = np.unique(rows["item"].astype(np.int64), return_inverse=True)
matrix = sp.csr_matrix((rows["w"].astype(np.float32), (u, i)), shape=(len(user_ids), len(item_ids)))
matrix.sum_duplicates()
del rows, raw, u, i
t2 = time.perf_counter()
print(f"matrix {t2 - t1:.2f}", flush=True)

model = AlternatingLeastSquares(factors=factors, regularization=0.05, alpha=2.0, iterations=iterations,
                                num_threads=threads, random_state=42)
model.fit(matrix, show_progress=False)
t3 = time.perf_counter()
print(f"fit {t3 - t2:.2f}", flush=True)


def write_factors(path, ids, vectors):
    """Binary COPY of (bigint, real[]) rows."""
    f = vectors.shape[1]
    rec = np.dtype([("n", ">i2"), ("l1", ">i4"), ("id", ">i8"), ("l2", ">i4"),
                    ("ndim", ">i4"), ("hasnull", ">i4"), ("elemtype", ">i4"), ("dim", ">i4"), ("lbound", ">i4"),
                    ("elems", [("len", ">i4"), ("v", ">f4")], (f,))])
    out = np.zeros(len(ids), dtype=rec)
    out["n"], out["l1"], out["id"] = 2, 8, ids
    out["l2"] = 20 + 8 * f
    out["ndim"], out["hasnull"], out["elemtype"], out["dim"], out["lbound"] = 1, 0, 700, f, 1
    out["elems"]["len"] = 4
    out["elems"]["v"] = vectors
    with open(path, "wb") as fh:
        fh.write(b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8)
        fh.write(out.tobytes())
        fh.write(b"\xff\xff")


write_factors(os.path.join(outdir, "user_factors.copy"), user_ids, np.asarray(model.user_factors))
write_factors(os.path.join(outdir, "item_factors.copy"), item_ids, np.asarray(model.item_factors))
t4 = time.perf_counter()
print(f"write {t4 - t3:.2f}", flush=True)
