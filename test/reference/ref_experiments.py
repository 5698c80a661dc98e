"""Reference read-out of a generated three-arm experiment (statsmodels, scipy, numpy).

Units are assigned to control / pop / hybrid; outcome rows are generated per unit
(several rows for some units, none for many: intention to treat counts those as 0).
Metrics: conversion (0/1), revenue (sparse, skewed), visits (counts), big (mean 1e4,
small variance: tests that the variance does not cancel). A pre-period covariate
drives CUPED; a segment relation (with some units missing) drives segment effects.
"""
import io

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, ttest_ind

ARMS = ["control", "pop", "hybrid"]
CONF = 0.95


def generate():
    rng = np.random.default_rng(424242)
    n = 6000
    units = np.arange(1, n + 1) * 7 + 3
    arm = rng.choice(3, size=n, p=[0.5, 0.25, 0.25])
    segment = rng.choice(["web", "phone", "multichannel"], size=n, p=[0.5, 0.3, 0.2])
    pre = rng.gamma(2.0, 20.0, size=n) * (rng.uniform(size=n) < 0.6)
    rows = []
    conv_p = np.array([0.08, 0.095, 0.11])[arm]
    conv = rng.uniform(size=n) < conv_p
    for i in np.nonzero(conv)[0]:
        rows.append((units[i], "conversion", 1.0))
    # revenue: converters spend, sometimes in two orders (rows are summed per unit)
    for i in np.nonzero(conv)[0]:
        amount = float(np.round(0.4 * pre[i] + rng.gamma(2.0, 30.0) * (1 + 0.1 * arm[i]), 2))
        if rng.uniform() < 0.3:
            part = float(np.round(amount * 0.4, 2))
            rows.append((units[i], "revenue", part))
            rows.append((units[i], "revenue", float(np.round(amount - part, 2))))
        else:
            rows.append((units[i], "revenue", amount))
    visits = rng.poisson(0.8 + 0.01 * pre + 0.1 * arm)
    for i in range(n):
        for _ in range(visits[i]):
            rows.append((units[i], "visits", 1.0))
    # big: every unit has it; mean 1e4, standard deviation about 1 (a naive sum of squares loses 8 digits)
    big = 1e4 + rng.normal(0, 1, n) + 0.05 * arm
    for i in range(n):
        rows.append((units[i], "big", float(big[i])))
    rows.sort(key=lambda r: (r[1], r[0]))
    return units, arm, segment, pre, rows


def unit_values(units, rows, metric):
    index = {u: k for k, u in enumerate(units)}
    y = np.zeros(len(units))
    for u, m, v in rows:
        if m == metric:
            y[index[u]] += v
    return y


def readout(y, arm, proportion, conf=CONF):
    """Rows per arm (control first): n, mean, sd, lifts, p-value."""
    out = []
    yc = y[arm == 0]
    for a in range(3):
        ya = y[arm == a]
        row = {"arm": ARMS[a], "n": len(ya), "mean": ya.mean(), "stddev": ya.std(ddof=1)}
        if a > 0:
            alpha = 1 - conf
            mt, mc = ya.mean(), yc.mean()
            if proportion:
                ct, cc = ya.sum(), yc.sum()
                z, p = proportions_ztest([ct, cc], [len(ya), len(yc)])
                low, high = confint_proportions_2indep(ct, len(ya), cc, len(yc), method="wald",
                                                       compare="diff", alpha=alpha)
                rlow, rhigh = confint_proportions_2indep(ct, len(ya), cc, len(yc), method="log",
                                                         compare="ratio", alpha=alpha)
                rlow, rhigh = rlow - 1, rhigh - 1
            else:
                t, p, df = ttest_ind(ya, yc, usevar="unequal")
                low, high = CompareMeans(DescrStatsW(ya), DescrStatsW(yc)).tconfint_diff(alpha=alpha, usevar="unequal")
                vt, vc = ya.var(ddof=1) / len(ya), yc.var(ddof=1) / len(yc)
                crit = stats.t.isf(alpha / 2, df)
                se_log = np.sqrt(vt / mt ** 2 + vc / mc ** 2)
                rlow = np.expm1(np.log(mt / mc) - crit * se_log)
                rhigh = np.expm1(np.log(mt / mc) + crit * se_log)
            row.update(lift_abs=mt - mc, lift_abs_low=low, lift_abs_high=high, lift_rel=mt / mc - 1,
                       lift_rel_low=rlow, lift_rel_high=rhigh, p_value=p)
        out.append(row)
    return out


COLS = ["n", "mean", "stddev", "lift_abs", "lift_abs_low", "lift_abs_high", "lift_rel", "lift_rel_low",
        "lift_rel_high", "p_value"]


def fmt(v):
    return "" if v is None else repr(float(v)) if not isinstance(v, (int, np.integer)) else str(v)


def files():
    units, arm, segment, pre, rows = generate()
    assignments = "".join(f"{u}\t{ARMS[a]}\t{s}\n" for u, a, s in zip(units, arm, segment))
    outcomes = "".join(f"{u}\t{m}\t{v!r}\n" for u, m, v in rows)
    # covariate rows only for units with pre-period activity; the rest count as 0
    covariate = "".join(f"{u}\t{x!r}\n" for u, x in zip(units, pre) if x > 0)
    # segments: every 10th unit has no segment row (a NULL segment in the read-out)
    segments = "".join(f"{u}\t{s}\n" for k, (u, s) in enumerate(zip(units, segment)) if k % 10 != 9)

    results, tests = [], []
    for metric in ["big", "conversion", "revenue", "visits"]:
        y = unit_values(units, rows, metric)
        proportion = bool(np.all((y == 0) | (y == 1)))
        for row in readout(y, arm, proportion):
            row["metric"] = metric
            row["test"] = "z" if proportion else "welch"
            results.append(row)
            if "p_value" in row:
                tests.append(row)
    pv = [r["p_value"] for r in tests]
    for method, col in (("bonferroni", "p_bonferroni"), ("fdr_bh", "p_bh"), ("holm", "p_holm")):
        for r, adj in zip(tests, multipletests(pv, method=method)[1]):
            r[col] = adj
    out = io.StringIO()
    out.write("metric\tarm\ttest\t" + "\t".join(COLS) + "\tp_bonferroni\tp_bh\tp_holm\n")
    for r in results:
        out.write("\t".join([r["metric"], r["arm"], r["test"]] + [fmt(r.get(c)) for c in COLS + ["p_bonferroni", "p_bh", "p_holm"]]) + "\n")
    expected = out.getvalue()

    # segment effects by segment for conversion and revenue, BH across segments x arms
    seg_rows = []
    seg_of = np.array([s if k % 10 != 9 else None for k, s in enumerate(segment)], dtype=object)
    for metric in ["conversion", "revenue"]:
        y = unit_values(units, rows, metric)
        proportion = bool(np.all((y == 0) | (y == 1)))
        block = []
        for s in ["multichannel", "phone", "web", None]:
            mask = np.array([v == s for v in seg_of])
            for row in readout(y[mask], arm[mask], proportion):
                row.update(metric=metric, segment=s)
                block.append(row)
        tested = [r for r in block if "p_value" in r]
        for r, adj in zip(tested, multipletests([r["p_value"] for r in tested], method="fdr_bh")[1]):
            r["p_bh"] = adj
        seg_rows += block
    out = io.StringIO()
    out.write("metric\tsegment\tarm\t" + "\t".join(COLS) + "\tp_bh\n")
    for r in seg_rows:
        out.write("\t".join([r["metric"], r["segment"] or "", r["arm"]] + [fmt(r.get(c)) for c in COLS + ["p_bh"]]) + "\n")
    seg_expected = out.getvalue()

    # CUPED on visits with the pre-period covariate
    y = unit_values(units, rows, "visits")
    x = pre
    theta = np.cov(x, y, ddof=1)[0, 1] / np.var(x, ddof=1)
    yadj = y - theta * (x - x.mean())
    plain = readout(y, arm, False)
    adj = readout(yadj, arm, False)
    out = io.StringIO()
    out.write("arm\tn\tmean\tmean_adjusted\tstddev\tstddev_adjusted\ttheta\tvariance_reduction\t"
              "lift_abs\tlift_abs_low\tlift_abs_high\tp_value\tlift_abs_cuped\tlift_abs_cuped_low\t"
              "lift_abs_cuped_high\tlift_rel_cuped\tlift_rel_cuped_low\tlift_rel_cuped_high\tp_value_cuped\n")
    for a in range(3):
        p, q = plain[a], adj[a]
        vr = 1 - np.var(yadj[arm == a], ddof=1) / np.var(y[arm == a], ddof=1)
        vals = [p["n"], p["mean"], q["mean"], p["stddev"], q["stddev"], theta, vr,
                p.get("lift_abs"), p.get("lift_abs_low"), p.get("lift_abs_high"), p.get("p_value"),
                q.get("lift_abs"), q.get("lift_abs_low"), q.get("lift_abs_high"), q.get("lift_rel"),
                q.get("lift_rel_low"), q.get("lift_rel_high"), q.get("p_value")]
        out.write(ARMS[a] + "\t" + "\t".join(fmt(v) for v in vals) + "\n")
    return {
        "experiments_assignments.tsv": assignments,
        "experiments_outcomes.tsv": outcomes,
        "experiments_covariate.tsv": covariate,
        "experiments_segments.tsv": segments,
        "experiments_expected.tsv": expected,
        "experiments_segments_expected.tsv": seg_expected,
        "experiments_cuped_expected.tsv": out.getvalue(),
    }
