"""Reference values for the differentially private models (numpy, scipy).

The noise of dp_popularity comes from the generator of src/random.h
(xoroshiro128** seeded through splitmix64, one stream per item), written again
here, so scipy's Kolmogorov-Smirnov test sees the very draws the extension
makes: 100,000 items with one user each (count 1), catalog = those items, one
contribution per user, epsilon 1 (Laplace scale 1; Gaussian sigma from zCDP).
The accounting (rho, noise scales, thresholds, dp_als sensitivity and shift)
is computed from the formulas of doc/differential-privacy.md, and the
contribution bounding (reservoir sampling per user) is replayed.
"""
import io
import math

import numpy as np
from scipy import stats

M64 = (1 << 64) - 1
ITEMS = 100000
SEED = 2026


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class Rng:
    """src/random.h: rng_seed(seed, stream), rng_next, the draws."""

    def __init__(self, seed, stream):
        _, mixed = splitmix64(stream & M64)
        x = (seed ^ mixed) & M64
        x, self.s0 = splitmix64(x)
        x, self.s1 = splitmix64(x)
        if self.s0 == 0 and self.s1 == 0:
            self.s1 = 1

    def next(self):
        s0, s1 = self.s0, self.s1
        result = (rotl((s0 * 5) & M64, 7) * 9) & M64
        s1 ^= s0
        self.s0 = rotl(s0, 24) ^ s1 ^ ((s1 << 16) & M64)
        self.s1 = rotl(s1, 37)
        return result

    def uniform(self):
        return (self.next() >> 11) * (1.0 / 9007199254740992.0)

    def uniform_open(self):
        return ((self.next() >> 11) + 0.5) * (1.0 / 9007199254740992.0)

    def below(self, n):
        m = (self.next() >> 32) * n
        low = m & 0xFFFFFFFF
        if low < n:
            threshold = ((1 << 32) - n) % n
            while low < threshold:
                m = (self.next() >> 32) * n
                low = m & 0xFFFFFFFF
        return m >> 32

    def normal(self):
        u, v = self.uniform_open(), self.uniform()
        return math.sqrt(-2.0 * math.log(u)) * math.cos(6.283185307179586 * v)

    def laplace(self, b):
        u = self.uniform_open()
        return b * math.log(2.0 * u) if u < 0.5 else -b * math.log(2.0 - 2.0 * u)


def item_stream(item_id):
    return item_id ^ 0x9E3779B97F4A7C15


def rho(epsilon, delta):
    L = math.log(1 / delta)
    return (math.sqrt(L + epsilon) - math.sqrt(L)) ** 2


def noises(draw):
    """Released count minus the true count 1, as the extension stores it (float4)."""
    out = np.empty(ITEMS)
    for k, item in enumerate(range(1, ITEMS + 1)):
        out[k] = float(np.float32(1.0 + draw(Rng(SEED, item_stream(item))))) - 1.0
    return out


def summary(name, x, dist, variance):
    ks = stats.kstest(x, dist)
    t = io.StringIO()
    t.write("draws\tks_statistic\tks_pvalue\tvariance\texpected_variance\n")
    t.write(f"{len(x)}\t{ks.statistic!r}\t{ks.pvalue!r}\t{np.var(x, ddof=1)!r}\t{variance!r}\n")
    t.write("item_id\tnoise\n")
    for item in range(1, 6):
        t.write(f"{item}\t{x[item - 1]!r}\n")
    return t.getvalue()


def bounding():
    """dp_bound_contributions: user 77 with items 1..20 (dense indexes 0..19), c = 5, seed 7."""
    n, c, seed, user = 20, 5, 7, 77
    rng = Rng(seed, user ^ 0xB0B0C0DE)
    pick = list(range(c))
    for k in range(c, n):
        r = rng.below(k + 1)
        if r < c:
            pick[r] = k
    return sorted(p + 1 for p in pick)


def files():
    out = {}
    lap = noises(lambda r: r.laplace(1.0))
    out["dp_laplace.tsv"] = summary("laplace", lap, stats.laplace(0, 1.0).cdf, 2.0)
    sigma = 1.0 / math.sqrt(2 * rho(1.0, 1e-6))
    gau = noises(lambda r: sigma * r.normal())
    out["dp_gaussian.tsv"] = summary("gaussian", gau, stats.norm(0, sigma).cdf, sigma ** 2)

    t = io.StringIO()
    t.write("case\tfield\tvalue\n")
    # dp_popularity, Laplace, no catalog: threshold 1 + (c/eps) ln(c / 2 delta)
    c, eps, delta = 3, 1.0, 1e-6
    t.write(f"pop_laplace_threshold\tnoise_scale\t{c / eps!r}\n")
    t.write(f"pop_laplace_threshold\tthreshold\t{1 + (c / eps) * math.log(c / (2 * delta))!r}\n")
    # dp_popularity, Gaussian, catalog: all of delta to zCDP
    r = rho(eps, delta)
    t.write(f"pop_gaussian_catalog\trho\t{r!r}\n")
    t.write(f"pop_gaussian_catalog\tnoise_std\t{math.sqrt(c) / math.sqrt(2 * r)!r}\n")
    # dp_popularity, Gaussian, no catalog: delta/2 to zCDP, delta/2 to the threshold
    r = rho(eps, delta / 2)
    std = math.sqrt(c) / math.sqrt(2 * r)
    t.write(f"pop_gaussian_threshold\trho\t{r!r}\n")
    t.write(f"pop_gaussian_threshold\tnoise_std\t{std!r}\n")
    t.write(f"pop_gaussian_threshold\tthreshold\t{1 + std * stats.norm.ppf(1 - delta / 2 / c)!r}\n")
    # dp_als: factors 8, iterations 5, alpha 2, contributions 10, clip 0.5, max_weight 2, eps 4, delta 1e-5;
    # items share the noisy gram (default) or solve with their own noisy matrices ("full")
    f, T, alpha, c, clip, w, eps, delta = 8, 5, 2.0, 10, 0.5, 2.0, 4.0, 1e-5
    cw = alpha * w
    r = rho(eps, delta)
    mult = math.sqrt(T / (2 * r))
    for case, matrix_term, shift in (("als", 0.0, 2 * math.sqrt(f)), ("als_full", c * cw ** 2 * clip ** 4, 2 * math.sqrt(2 * f))):
        sens = math.sqrt(clip ** 4 + matrix_term + c * (1 + cw) ** 2 * clip ** 2)
        for field, value in (("rho", r), ("sensitivity", sens), ("noise_multiplier", mult),
                             ("noise_std", mult * sens), ("diagonal_shift", shift * mult * sens)):
            t.write(f"{case}\t{field}\t{value!r}\n")
    out["dp_accounting.tsv"] = t.getvalue()

    out["dp_bounding.tsv"] = "item_id\n" + "".join(f"{i}\n" for i in bounding())
    return out
