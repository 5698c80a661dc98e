"""Reference values for the hybrid's ALS core ("core": "als"; numpy, float64).

An item's vector is its id factor plus the weighted sum of its features'
factors W; a user's is its id factor (no user features here). Implicit ALS
(c = 1 + α w, preference 1) whose item rows have the prior mean F W: each
iteration solves every user exactly, then every item with λ‖y − F_i W‖² for
λ‖y‖², then W = argmin λ Σ_i ‖y_i − F_i W‖² + μ‖W‖² over the items with
interactions. The start is pg_prng's (ref_explain.PgPrng): user factors, then
item factors, uniform in [0, 0.01), in ascending id order; W starts at 0.
The C code solves by conjugate gradient with twice as many steps as factors,
which is exact up to rounding. Items 126 and 127 have features and no interaction
(item cold start): their vector is F W.

explain's parts of the score x·q (no bias: items' bias components are 0): the
user's id gets ½ x·q, item feature g ½ w_g x·W_g, the item's id ½ x·(q − F W).
"""
import io

import numpy as np

from ref_explain import PgPrng, interactions

FACTORS = 4
SEED = 11
ALPHA = 2.0
REGULARIZATION = 0.5
FEATURE_REGULARIZATION = 2.0
ITERATIONS = 3
COLD = (126, 127)


def item_features(i):
    return [("genre:" + str(i % 3), 1.0), ("decade:" + str(i % 2), 0.5)]


def files():
    rows = interactions()
    users = sorted({u for u, _, _ in rows})
    items = sorted({i for _, i, _ in rows})
    names = sorted({n for i in items + list(COLD) for n, _ in item_features(i)})
    f = FACTORS
    prng = PgPrng(SEED)
    X = np.array([[float(np.float32(prng.double() * 0.01)) for _ in range(f)] for _ in users])
    Y = np.array([[float(np.float32(prng.double() * 0.01)) for _ in range(f)] for _ in items])

    def features_matrix(ids):
        F = np.zeros((len(ids), len(names)))
        for r, i in enumerate(ids):
            for n, w in item_features(i):
                F[r, names.index(n)] += w
        return F

    F = features_matrix(items)
    W = np.zeros((len(names), f))
    by_user = {u: [(items.index(i), w) for uu, i, w in rows if uu == u] for u in users}
    by_item = {k: [(users.index(u), w) for u, i, w in rows if i == item] for k, item in enumerate(items)}
    lam, mu = REGULARIZATION, FEATURE_REGULARIZATION
    for _ in range(ITERATIONS):
        G = Y.T @ Y + lam * np.eye(f)
        for r, u in enumerate(users):
            A, b = G.copy(), np.zeros(f)
            for k, w in by_user[u]:
                A += ALPHA * w * np.outer(Y[k], Y[k])
                b += (1 + ALPHA * w) * Y[k]
            X[r] = np.linalg.solve(A, b)
        G = X.T @ X + lam * np.eye(f)
        P = F @ W
        for k in range(len(items)):
            A, b = G.copy(), lam * P[k]
            for r, w in by_item[k]:
                A += ALPHA * w * np.outer(X[r], X[r])
                b += (1 + ALPHA * w) * X[r]
            Y[k] = np.linalg.solve(A, b)
        W = np.linalg.solve(lam * F.T @ F + mu * np.eye(len(names)), lam * F.T @ Y)

    out = {}
    t = io.StringIO()
    t.write("item_id\tfeature\tweight\n")
    for i in items + list(COLD):
        for n, w in item_features(i):
            t.write(f"{i}\t{n}\t{w}\n")
    out["hybrid_features.tsv"] = t.getvalue()

    t = io.StringIO()
    t.write("user_id\titem_id\tkind\tname\tcontribution\n")
    for u in (1, 7, 19):
        x = X[users.index(u)]
        for i in (101, 110, 125) + COLD:
            Fi = features_matrix([i])[0]
            q = Y[items.index(i)] if i in items else Fi @ W
            t.write(f"{u}\t{i}\tscore\t\t{x @ q!r}\n")
            t.write(f"{u}\t{i}\tuser_id\t\t{0.5 * x @ q!r}\n")
            for g, n in enumerate(names):
                if Fi[g] != 0:
                    t.write(f"{u}\t{i}\titem_feature\t{n}\t{0.5 * Fi[g] * x @ W[g]!r}\n")
            if i in items:
                t.write(f"{u}\t{i}\titem_id\t\t{0.5 * x @ (q - Fi @ W)!r}\n")
    out["hybrid_als.tsv"] = t.getvalue()
    return out
