"""Reference values for personalize.explain on ALS (numpy, float64).

The model: personalize.als_fit with "iterations": 0 keeps its starting
factors, which PostgreSQL's pg_prng (xoroshiro128**, seeded through
splitmix64; src/common/pg_prng.c) draws uniformly in [0, 0.01): the user
factors first, then the item factors, in ascending id order. They are drawn
again here, so the item factors Y are known exactly. For a user u and an item
i, implicit's explain decomposes the score of u's exactly solved factors:
    A_u = YᵀY + λI + Σ_j (c_uj - 1) y_j y_jᵀ,   c_uj = 1 + α w_uj,
    contribution of past item j = c_uj y_iᵀ A_u⁻¹ y_j.
"""
import io

import numpy as np

M64 = (1 << 64) - 1
FACTORS = 4
SEED = 11
ALPHA = 2.0
REGULARIZATION = 0.001


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class PgPrng:
    def __init__(self, seed):
        seed, self.s0 = splitmix64(seed)
        seed, self.s1 = splitmix64(seed)

    def double(self):
        s0 = self.s0
        sx = self.s1 ^ s0
        val = (rotl((s0 * 5) & M64, 7) * 9) & M64
        self.s0 = rotl(s0, 24) ^ sx ^ ((sx << 16) & M64)
        self.s1 = rotl(sx, 37)
        return (val >> 12) * 2.0 ** -52


def interactions():
    rng = np.random.default_rng(4242)
    rows = []
    for u in range(1, 31):
        for i in sorted(rng.choice(np.arange(101, 126), size=int(rng.integers(2, 9)), replace=False)):
            rows.append((u, int(i), int(rng.integers(1, 4))))
    return rows


def files():
    rows = interactions()
    users = sorted({u for u, _, _ in rows})
    items = sorted({i for _, i, _ in rows})
    prng = PgPrng(SEED)
    for _ in range(len(users) * FACTORS):
        prng.double()
    Y = np.array([[float(np.float32(prng.double() * 0.01)) for _ in range(FACTORS)] for _ in items])
    gram = Y.T @ Y
    out = {}
    t = io.StringIO()
    t.write("user_id\titem_id\tweight\n")
    for u, i, w in rows:
        t.write(f"{u}\t{i}\t{w}\n")
    out["explain_interactions.tsv"] = t.getvalue()

    t = io.StringIO()
    t.write("user_id\titem_id\tpast_item_id\tcontribution\n")
    for u in (1, 7, 19):
        mine = [(i, w) for uu, i, w in rows if uu == u]
        A = gram + REGULARIZATION * np.eye(FACTORS)
        for i, w in mine:
            y = Y[items.index(i)]
            A += ALPHA * w * np.outer(y, y)
        for target in (101, 110, 125):
            v = np.linalg.solve(A, Y[items.index(target)])
            for i, w in mine:
                t.write(f"{u}\t{target}\t{i}\t{(1 + ALPHA * w) * v @ Y[items.index(i)]!r}\n")
    out["explain_als.tsv"] = t.getvalue()
    return out
