"""Reference values for the statistics concern.

statistics_distributions.tsv: normal, Student t and chi-square functions and quantiles
over a wide grid including far tails, with scipy's value and a 40-digit mpmath value
(scipy itself is off by more than 1e-13 in a few corners, e.g. chi-square cdf at
df = 1e6; the tests hold us to mpmath everywhere and to scipy where scipy agrees with
mpmath).
statistics_tests.tsv: z-tests, Welch tests, chi-square goodness of fit, p-value
adjustments, power and sample size, from scipy and statsmodels.
"""
import io

import mpmath as mp
import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize, proportions_ztest

mp.mp.dps = 40


def _norm_cdf(x):
    return mp.ncdf(x)


def _t_cdf(x, df):
    x, df = mp.mpf(x), mp.mpf(df)
    if x == 0:
        return mp.mpf(1) / 2
    try:
        tail = mp.betainc(df / 2, mp.mpf(1) / 2, 0, df / (df + x * x), regularized=True) / 2
    except (ValueError, mp.libmp.NoConvergence):  # mpmath's hypergeometric series gives up for some large df: integrate
        logc = mp.loggamma((df + 1) / 2) - mp.loggamma(df / 2) - mp.log(df * mp.pi) / 2
        tail = mp.quad(lambda s: mp.exp(logc - (df + 1) / 2 * mp.log1p(s * s / df)), [abs(x), abs(x) + 1, mp.inf])
    return tail if x < 0 else 1 - tail


def _chi2_pdf(df):
    k = mp.mpf(df) / 2
    logc = -k * mp.log(2) - mp.loggamma(k)
    return lambda s: mp.exp(logc + (k - 1) * mp.log(s) - s / 2)


def _chi2_cdf(x, df):
    try:
        return mp.gammainc(mp.mpf(df) / 2, 0, mp.mpf(x) / 2, regularized=True)
    except (ValueError, mp.libmp.NoConvergence):  # large df: integrate the density
        x, sd = mp.mpf(x), mp.sqrt(2 * mp.mpf(df))
        return mp.quad(_chi2_pdf(df), [max(mp.mpf(0), x - 60 * sd), x - sd if x - sd > 0 else x / 2, x])


def _chi2_sf(x, df):
    try:
        return mp.gammainc(mp.mpf(df) / 2, mp.mpf(x) / 2, mp.inf, regularized=True)
    except (ValueError, mp.libmp.NoConvergence):
        x, sd = mp.mpf(x), mp.sqrt(2 * mp.mpf(df))
        return mp.quad(_chi2_pdf(df), [x, x + sd, x + 60 * sd, mp.inf])


def _invert(f, target, x0, positive=False):
    """Root of f(x) = target near x0, in log space for positive variables."""
    target = mp.mpf(target)
    if positive:
        u = mp.findroot(lambda u: mp.log(f(mp.exp(u)) / target), mp.log(x0), tol=mp.mpf(10) ** -35)
        return mp.exp(u)
    return mp.findroot(lambda x: f(x) / target - 1, mp.mpf(x0), tol=mp.mpf(10) ** -35)


def distributions():
    rows = []

    def add(func, x, df, scipy_value, exact):
        if not abs(exact) >= 1e-300:  # quantiles that underflow double precision are left out
            return
        rows.append((func, x, df, float(scipy_value), float(exact)))

    xs = [float(v) for v in np.linspace(-37, 37, 149)] + [1e-300, 1e-10, -1e-10, 1e-5, 0.3, -0.3]
    for x in xs:
        add("norm_cdf", x, "", stats.norm.cdf(x), _norm_cdf(x))
        add("norm_sf", x, "", stats.norm.sf(x), 1 - _norm_cdf(x) if x < 0 else _norm_cdf(-x))
    ps = [10.0 ** -k for k in (1, 2, 3, 5, 8, 12, 16, 20, 50, 100, 200, 300)] + \
        [float(v) for v in np.linspace(0.01, 0.99, 50)] + [0.5 - 1e-12, 0.5 + 1e-10, 1 - 1e-10, 1 - 1e-15]
    for p in ps:
        sp = stats.norm.ppf(p)
        add("norm_ppf", p, "", sp, _invert(_norm_cdf, p, sp) if p != 0.5 else 0)
        si = stats.norm.isf(p)
        add("norm_isf", p, "", si, _invert(lambda x: _norm_cdf(-x), p, si))

    t_dfs = [0.3, 1, 1.5, 2, 3, 4.5, 7, 10, 29.5, 100, 1000, 1e4, 1e5, 1e6, 1e8]
    ts = [1e-8, 1e-3, 0.1, 0.5, 1, 1.5, 1.96, 2, 3, 5, 10, 30, 100, 1e4, 1e8]
    for df in t_dfs:
        for t in ts + [-t for t in ts]:
            exact = _t_cdf(t, df)
            add("t_cdf", t, df, stats.t.cdf(t, df), exact)
            add("t_sf", t, df, stats.t.sf(t, df), 1 - exact if t < 0 else _t_cdf(-t, df))
        for q in [1e-100, 1e-20, 1e-10, 1e-5, 1e-3, 0.025, 0.05, 0.2, 0.4999, 0.6, 0.975, 0.999999]:
            si = stats.t.isf(q, df)
            if not abs(si) < 1e99:
                continue
            sf = lambda x, df=df: 1 - _t_cdf(x, df) if x < 0 else _t_cdf(-x, df)
            exact = _invert(sf, q, si, positive=si > 0) if si > 0 else -_invert(lambda x, df=df: _t_cdf(-x, df), 1 - mp.mpf(q), -si, positive=True)
            add("t_isf", q, df, si, exact)
            add("t_ppf", 1 - q if q > 0.5 else q, df, stats.t.ppf(1 - q if q > 0.5 else q, df),
                exact if q > 0.5 else -exact)

    c_dfs = [0.1, 0.5, 1, 2, 3, 5, 10, 29, 30, 31, 100, 1000, 1e4, 1e6]
    cxs = [1e-10, 1e-3, 0.1, 0.5, 1, 2, 3.84, 5, 10, 20, 50, 100, 300, 1000, 1e4, 1e6, 1.01e6]
    for df in c_dfs:
        for x in cxs:
            add("chi2_cdf", x, df, stats.chi2.cdf(x, df), _chi2_cdf(x, df))
            add("chi2_sf", x, df, stats.chi2.sf(x, df), _chi2_sf(x, df))
        for q in [1e-100, 1e-20, 1e-10, 1e-5, 1e-3, 0.05, 0.3, 0.5, 0.7, 0.95, 0.999999]:
            si = stats.chi2.isf(q, df)
            add("chi2_isf", q, df, si, _invert(lambda x, df=df: _chi2_sf(x, df), q, si, positive=True))
            sp = stats.chi2.ppf(q, df)
            add("chi2_ppf", q, df, sp, _invert(lambda x, df=df: _chi2_cdf(x, df), q, sp, positive=True))

    out = io.StringIO()
    out.write("func\tx\tdf\tscipy\texact\n")
    for func, x, df, s, e in rows:
        out.write(f"{func}\t{x!r}\t{df!r}\t{s!r}\t{e!r}\n" if df != "" else f"{func}\t{x!r}\t\t{s!r}\t{e!r}\n")
    return out.getvalue()


def tests():
    """One line per check: kind, inputs as text, expected outputs."""
    rng = np.random.default_rng(5150)
    out = io.StringIO()
    out.write("kind\tid\targs\texpected\n")
    for i in range(40):
        n1, n2 = int(rng.integers(20, 200000)), int(rng.integers(20, 200000))
        p1, p2 = rng.uniform(0.001, 0.6), rng.uniform(0.001, 0.6)
        c1, c2 = int(rng.binomial(n1, p1)), int(rng.binomial(n2, p2))
        z, p = proportions_ztest([c1, c2], [n1, n2])
        out.write(f"ztest\t{i}\t{{{c1},{n1},{c2},{n2}}}\t{{{z!r},{p!r}}}\n")
    for i in range(40):
        n1, n2 = int(rng.integers(2, 5000)), int(rng.integers(2, 5000))
        m1, m2 = rng.normal(10, 3), rng.normal(10, 3)
        s1, s2 = rng.uniform(0.1, 20), rng.uniform(0.1, 20)
        res = stats.ttest_ind_from_stats(m1, s1, n1, m2, s2, n2, equal_var=False)
        v1, v2 = s1 ** 2 / n1, s2 ** 2 / n2
        df = (v1 + v2) ** 2 / (v1 ** 2 / (n1 - 1) + v2 ** 2 / (n2 - 1))
        out.write(f"welch\t{i}\t{{{m1!r},{s1!r},{n1},{m2!r},{s2!r},{n2}}}\t{{{res.statistic!r},{df!r},{res.pvalue!r}}}\n")
    for i in range(20):
        k = int(rng.integers(2, 8))
        w = rng.uniform(0.5, 3, k)
        obs = rng.multinomial(int(rng.integers(100, 100000)), w / w.sum()).astype(float)
        expected = obs.sum() * w / w.sum()
        res = stats.chisquare(obs, expected)
        args = "{" + ",".join(repr(float(v)) for v in obs) + "}|{" + ",".join(repr(float(v)) for v in w) + "}"
        out.write(f"chisq\t{i}\t{args}\t{{{res.statistic!r},{k - 1},{res.pvalue!r}}}\n")
    for method, sm in (("bonferroni", "bonferroni"), ("holm", "holm"), ("bh", "fdr_bh")):
        for i in range(15):
            m = int(rng.integers(1, 30))
            pv = rng.uniform(0, 1, m) ** rng.uniform(1, 6)
            if i == 0:
                pv = np.array([0.01, 0.01, 0.04, 0.04, 0.2])  # ties
            adj = multipletests(pv, method=sm)[1]
            out.write(f"{method}\t{i}\t{{" + ",".join(repr(float(v)) for v in pv) + "}\t{"
                      + ",".join(repr(float(v)) for v in adj) + "}\n")
    power = NormalIndPower()
    for i, (base, mde, alpha, pw) in enumerate([(0.05, 0.1, 0.05, 0.8), (0.1, 0.05, 0.05, 0.9), (0.02, 0.2, 0.01, 0.8),
                                                (0.3, -0.1, 0.05, 0.8), (0.5, 0.01, 0.05, 0.8), (0.001, 0.5, 0.1, 0.95),
                                                (0.8, 0.2, 0.05, 0.8), (0.15, -0.3, 0.001, 0.99)]):
        es = proportion_effectsize(base * (1 + mde), base)
        n = power.solve_power(effect_size=es, alpha=alpha, power=pw, ratio=1.0, alternative="two-sided")
        out.write(f"sample_size\t{i}\t{{{base!r},{mde!r},{alpha!r},{pw!r}}}\t{{{int(np.ceil(n))},{n!r}}}\n")
        for nn in (100, 1000, int(np.ceil(n)), 123456):
            pv = power.power(effect_size=es, nobs1=nn, alpha=alpha, ratio=1.0, alternative="two-sided")
            out.write(f"power\t{i}\t{{{base!r},{mde!r},{nn},{alpha!r}}}\t{{{pv!r}}}\n")
    return out.getvalue()


def files():
    return {"statistics_distributions.tsv": distributions(), "statistics_tests.tsv": tests()}
