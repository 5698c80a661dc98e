"""Reference values for uplift models and read-outs (sql/uplift.sql).

A synthetic randomised experiment from a fixed seed: a treatment flag, numeric, integer and
categorical features, a binary outcome whose treatment effect depends on the features.

T-learner: statsmodels Logit (Newton) on each arm, first level of the categorical feature as the
reference; per row the treated and control probabilities and their difference.

Read-outs, written here with numpy from the definitions of scikit-uplift 0.5 (sklift.metrics;
its own package is not in Debian) and used by bench/validate_propensity.sh on Hillstrom too:
  order       scores descending; within equal scores control before treated, then
              non-responders before responders. scikit-uplift takes equal scores in the reverse
              of the input order; the two agree whenever no cut falls inside a run of equal
              scores (checked below for the main data, and the "ties" data exercises the rule).
  curves      at the end of each run of equal scores, n rows targeted of which nt treated and
              nc = n - nt control, yt and yc responders: uplift curve (yt/nt - yc/nc) * n,
              Qini curve yt - yc * nt/nc (a ratio with a zero denominator counts as 0), both
              starting at (0, 0)
  areas       sklearn.metrics.auc (trapezoids); normalized as (area - baseline) / (perfect area -
              baseline), the baseline the straight line to the last point, the perfect curve
              that of the scores 2[y = t] + (y if control responders outnumber treated
              non-responders else t) for AUUC, y t - y (1 - t) for the Qini coefficient
  uplift@k    overall: the first int(n k) rows, treated response rate minus control rate;
              by_group: the first int(n_arm k) rows of each arm
  bins        numpy.array_split of the ordered rows (overall) or of each arm's (by_group);
              per bin both rates, their difference, its Wald interval and the pooled z-test
              (statsmodels confint_proportions_2indep(method="wald"), proportions_ztest)
"""
import numpy as np
import statsmodels.api as sm
from scipy.special import expit
from sklearn.metrics import auc
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

SEG = ["a", "b", "c"]


def order(score, t, y):
    return np.lexsort((y, t, -score))


def sklift_order(score):
    return np.argsort(score, kind="mergesort")[::-1]


def curve(y, t, score, kind):
    o = order(score, t, y)
    y, t, s = y[o], t[o], score[o]
    ends = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    n = ends + 1.0
    nt = np.cumsum(t)[ends].astype(float)
    nc = n - nt
    yt = np.cumsum(y * t)[ends].astype(float)
    yc = np.cumsum(y * (1 - t))[ends].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "uplift":
            v = (np.where(nt > 0, yt / nt, 0.0) - np.where(nc > 0, yc / nc, 0.0)) * n
        else:
            v = yt - yc * np.where(nc > 0, nt / nc, 0.0)
    return np.r_[0.0, n], np.r_[0.0, v]


def perfect_score(y, t, kind):
    if kind == "uplift":
        control_responders = np.sum((y == 1) & (t == 0))
        treated_nonresponders = np.sum((y == 0) & (t == 1))
        return 2.0 * (y == t) + (y if control_responders > treated_nonresponders else t)
    return (y * t - y * (1 - t)).astype(float)


def normalized_area(y, t, score, kind):
    xa, ya = curve(y, t, score, kind)
    xp, yp = curve(y, t, perfect_score(y, t, kind), kind)
    base = auc([0, xp[-1]], [0, yp[-1]])
    return (auc(xa, ya) - base) / (auc(xp, yp) - base)


def uplift_at_k(y, t, score, k, strategy, o=None):
    o = order(score, t, y) if o is None else o
    y, t = y[o], t[o]
    if strategy == "overall":
        size = int(len(y) * k)
        yy, tt = y[:size], t[:size]
        return yy[tt == 1].mean() - yy[tt == 0].mean()
    yt, yc = y[t == 1], y[t == 0]
    return yt[:int(len(yt) * k)].mean() - yc[:int(len(yc) * k)].mean()


def bins(y, t, score, nbins, strategy):
    o = order(score, t, y)
    y, t = y[o], t[o]
    if strategy == "overall":
        parts = list(zip(np.array_split(y, nbins), np.array_split(t, nbins)))
        groups = [(yy[tt == 1], yy[tt == 0]) for yy, tt in parts]
    else:
        groups = list(zip(np.array_split(y[t == 1], nbins), np.array_split(y[t == 0], nbins)))
    out = []
    for b, (yt, yc) in enumerate(groups, 1):
        if len(yt) == 0 or len(yc) == 0:           # an arm missing from the bin: its rate and the comparison are undefined
            out.append((b, len(yt), len(yc), yt.mean() if len(yt) else np.nan, yc.mean() if len(yc) else np.nan,
                        np.nan, np.nan, np.nan, np.nan))
            continue
        rt, rc = yt.mean(), yc.mean()
        lo, hi = confint_proportions_2indep(yt.sum(), len(yt), yc.sum(), len(yc), method="wald", compare="diff")
        p = proportions_ztest([yt.sum(), yc.sum()], [len(yt), len(yc)])[1] if 0 < yt.sum() + yc.sum() < len(yt) + len(yc) else np.nan
        out.append((b, len(yt), len(yc), rt, rc, rt - rc, lo, hi, p))
    return out


def fmt(x):
    return "" if x is None or (isinstance(x, float) and np.isnan(x)) else repr(float(x))


def experiment(rng, n):
    x1 = rng.normal(0.0, 1.0, n)
    x2 = rng.integers(0, 11, n)
    seg = rng.choice(SEG, n, p=[0.5, 0.3, 0.2])
    t = (rng.random(n) < 0.5).astype(int)
    base = -1.0 + 0.5 * x1 - 0.05 * x2 + np.select([seg == "b", seg == "c"], [0.3, -0.4], 0.0)
    effect = 0.2 + 0.6 * (seg == "b") - 0.5 * (seg == "c") + 0.3 * x1
    y = (rng.random(n) < expit(base + t * effect)).astype(int)
    return x1, x2, seg, t, y


def t_learner(x1, x2, seg, t, y):
    X = np.column_stack([np.ones(len(y)), x1, x2.astype(float)] + [(seg == lv).astype(float) for lv in SEG[1:]])
    arms = {}
    for arm in (0, 1):
        m = t == arm
        arms[arm] = sm.Logit(y[m].astype(float), X[m]).fit(method="newton", tol=1e-12, maxiter=100, disp=0).params
    return expit(X @ arms[1]), expit(X @ arms[0])


def readouts(y, t, score, name):
    """metrics, curve and bin lines for one data set"""
    metrics, curves, bin_lines = [], [], []
    n, nt = len(y), int(t.sum())
    for strategy in ("overall", "by_group"):
        for k in (0.1, 0.3, 0.5):
            metrics.append(f"{name}\t{strategy}\t{k!r}\t{n}\t{nt}\t{n - nt}\t{fmt(normalized_area(y, t, score, 'uplift'))}\t"
                           f"{fmt(normalized_area(y, t, score, 'qini'))}\t{fmt(uplift_at_k(y, t, score, k, strategy))}\n")
    for kind in ("uplift", "qini"):
        x, v = curve(y, t, score, kind)
        for i, (xi, vi) in enumerate(zip(x, v)):
            if name == "model" and i % 20 != 0 and i != len(x) - 1:
                continue                            # every 20th point of the 3001 (and the last) is enough
            curves.append(f"{name}\t{kind}\t{int(xi)}\t{fmt(vi)}\t{fmt(v[-1] * xi / n)}\n")
    for strategy in ("overall", "by_group"):
        for row in bins(y, t, score, 10, strategy):
            bin_lines.append(f"{name}\t{strategy}\t" + "\t".join(str(v) if isinstance(v, (int, np.integer)) else fmt(v) for v in row) + "\n")
    return metrics, curves, bin_lines


def files():
    rng = np.random.default_rng(20261213)
    x1, x2, seg, t, y = experiment(rng, 3000)
    pt, pc = t_learner(x1, x2, seg, t, y)
    score = pt - pc
    # no cut inside a run of equal scores: the order rule agrees with scikit-uplift's
    for strategy in ("overall", "by_group"):
        for k in (0.1, 0.3, 0.5):
            assert uplift_at_k(y, t, score, k, strategy) == uplift_at_k(y, t, score, k, strategy, sklift_order(score))
    data = ["id\ttreatment\toutcome\tx1\tx2\tseg\n"] + [
        f"{i + 1}\t{'t' if t[i] else 'f'}\t{'t' if y[i] else 'f'}\t{x1[i]!r}\t{x2[i]}\t{seg[i]}\n" for i in range(len(y))]
    scores = ["id\tp_treated\tp_control\tuplift\n"] + [
        f"{i + 1}\t{pt[i]!r}\t{pc[i]!r}\t{score[i]!r}\n" for i in range(len(y))]
    metrics, curves, bin_lines = readouts(y, t, score, "model")

    # ties: scores on a coarse grid, so runs of equal scores straddle the cuts
    tie_score = np.round(score * 4) / 4
    m2, c2, b2 = readouts(y, t, tie_score, "ties")
    return {
        "uplift_data.tsv": "".join(data),
        "uplift_scores.tsv": "".join(scores),
        "uplift_metrics.tsv": "source\tstrategy\tk\tn\ttreated\tcontrol\tauuc\tqini_coefficient\tuplift_at_k\n" + "".join(metrics + m2),
        "uplift_curves.tsv": "source\tkind\tn\tvalue\trandom\n" + "".join(curves + c2),
        "uplift_bins.tsv": "source\tstrategy\tbin\tn_treated\tn_control\trate_treated\trate_control\tuplift\tuplift_low\t"
                           "uplift_high\tp_value\n" + "".join(bin_lines + b2),
    }
