"""Reference values for the recommendation models (numpy, float64).

Interactions: 120 users x 40 items with integer weights and duplicate rows,
so popularity sums are exact in float32; item-kNN cosine neighbours of every
item (top 5, shrinkage 0 and 10) from a dense float64 matrix.
"""
import io

import numpy as np


def interactions():
    rng = np.random.default_rng(20261123)
    rows = []
    for u in range(1, 121):
        n = int(rng.integers(2, 15))
        # power-law item popularity
        items = np.minimum((rng.pareto(1.2, n) * 4).astype(int), 39) + 1001
        for i in items:
            rows.append((u * 10, int(i), int(rng.integers(1, 4))))
    return rows


def dense(rows):
    users = sorted({u for u, _, _ in rows})
    items = sorted({i for _, i, _ in rows})
    R = np.zeros((len(users), len(items)))
    for u, i, w in rows:
        R[users.index(u), items.index(i)] += w
    return users, items, R


def files():
    rows = interactions()
    users, items, R = dense(rows)
    out = {}
    t = io.StringIO()
    t.write("user_id\titem_id\tweight\n")
    for u, i, w in rows:
        t.write(f"{u}\t{i}\t{w}\n")
    out["models_interactions.tsv"] = t.getvalue()

    t = io.StringIO()
    t.write("item_id\tpopularity\tusers\n")
    for j, i in enumerate(items):
        t.write(f"{i}\t{R[:, j].sum():.1f}\t{int((R[:, j] > 0).sum())}\n")
    out["models_popularity.tsv"] = t.getvalue()

    t = io.StringIO()
    t.write("shrinkage\titem_id\trank\tneighbor\tsimilarity\n")
    norms = np.linalg.norm(R, axis=0)
    dots = R.T @ R
    for shrink in (0.0, 10.0):
        sim = dots / (np.outer(norms, norms) + shrink)
        for j, i in enumerate(items):
            s = sim[j].copy()
            s[j] = -1
            # neighbours must co-occur (positive similarity); ties by lower id
            order = sorted([k for k in range(len(items)) if s[k] > 0], key=lambda k: (-s[k], k))[:5]
            for r, k in enumerate(order, 1):
                t.write(f"{shrink:g}\t{i}\t{r}\t{items[k]}\t{s[k]!r}\n")
    out["models_knn.tsv"] = t.getvalue()
    return out
