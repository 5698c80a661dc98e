"""Reference values for fairness: per-group confusion matrices with scikit-learn and
fairlearn's documented definitions (fairlearn itself is not packaged in Debian).

Rates: base_rate = P/n, selection_rate = predicted positive/n, tpr = TP/P, fpr = FP/N,
precision = TP/(TP+FP); a zero denominator gives NULL (written as an empty field).
Summaries over the groups with a defined rate (pandas' skipna, as fairlearn's group_max /
group_min): difference = max - min, ratio = min / max, equalized odds = the larger of the
TPR and FPR differences, its ratio the smaller of the two ratios.
"""
import io

import numpy as np
from sklearn.metrics import confusion_matrix


def fmt(x):
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    return repr(float(x))


def div(a, b):
    return float(a) / float(b) if b != 0 else np.nan


def fairness_data():
    rng = np.random.default_rng(20261106)
    n = 6000
    groups = np.array(["a", "b", "c", "d", "nopos", "noneg", None], dtype=object)
    g = groups[rng.choice(len(groups), size=n, p=[0.3, 0.25, 0.2, 0.15, 0.04, 0.04, 0.02])]
    base = {"a": 0.3, "b": 0.5, "c": 0.2, "d": 0.6, "nopos": 0.0, "noneg": 1.0, None: 0.4}
    label = np.array([rng.random() < base[x] for x in g])
    shift = {"a": 1.0, "b": 0.6, "c": 1.4, "d": 0.3, "nopos": 0.5, "noneg": 0.5, None: 0.8}
    score = 1.0 / (1.0 + np.exp(-(rng.standard_normal(n) + np.array([shift[x] for x in g]) * (2 * label - 1))))
    label_missing = rng.random(n) < 0.01          # rows without a label are left out
    day = rng.integers(0, 3, size=n)
    rows = []
    for i in range(n):
        lab = "" if label_missing[i] else ("t" if label[i] else "f")
        rows.append(f"{i + 1}\t{'' if g[i] is None else g[i]}\t{lab}\t{score[i]!r}\t{day[i]}\n")
    data = "id\tgrp\tlabel\tscore\tday\n" + "".join(rows)
    keep = ~label_missing
    return data, g[keep], label[keep], (score >= 0.5)[keep], day[keep]


def by_group(g, y, yhat):
    out = []
    keys = sorted({x for x in g if x is not None}) + ([None] if any(x is None for x in g) else [])
    for key in keys:
        mask = np.array([x == key if key is not None else x is None for x in g])
        tn, fp, fn, tp = confusion_matrix(y[mask], yhat[mask], labels=[False, True]).ravel()
        n = tn + fp + fn + tp
        out.append((key, int(n), div(tp + fn, n), div(tp + fp, n), div(tp, tp + fn), div(fp, fp + tn), div(tp, tp + fp)))
    return out


def summary(rows):
    sel = np.array([r[3] for r in rows])
    tpr = np.array([r[4] for r in rows])
    fpr = np.array([r[5] for r in rows])

    def diff(v):
        return np.nanmax(v) - np.nanmin(v)

    def ratio(v):
        return div(np.nanmin(v), np.nanmax(v))

    eod = max(diff(tpr), diff(fpr))
    eor = min(ratio(tpr), ratio(fpr))
    return diff(sel), ratio(sel), eod, eor, diff(tpr)


def exposure_data():
    rng = np.random.default_rng(99)
    items = np.arange(1, 201)
    group = np.where(items <= 20, "head", np.where(items <= 80, "mid", "tail")).astype(object)
    group[[195, 196, 197]] = None                  # three catalog items without a group
    cat = "item_id\titem_group\n" + "".join(
        f"{i}\t{'' if gr is None else gr}\n" for i, gr in zip(items, group))
    pop = 1.0 / items ** 0.8
    pop /= pop.sum()
    recs = ["list_id\titem_id\trank\n"]
    exp_by = {}
    for lst in range(1, 61):
        chosen = rng.choice(items, size=10, replace=False, p=pop)
        if lst % 7 == 0:
            chosen[9] = 1000 + lst                 # an item missing from the catalog
        for r, it in enumerate(chosen, start=1):
            recs.append(f"{lst}\t{it}\t{r}\n")
            gr = group[it - 1] if it <= 200 else None
            exp_by[gr] = exp_by.get(gr, 0.0) + 1.0 / np.log2(r + 1)
    recs.append("61\t5\t\n61\t6\t0\n")            # NULL and non-positive ranks are ignored
    keys = ["head", "mid", "tail", None]
    counts = {k: int(sum(1 for x in group if x == k)) if k is not None else int(sum(1 for x in group if x is None)) for k in keys}
    tot_items = sum(counts.values())
    tot_e = sum(exp_by.values())
    lines = ["group_value\tcatalog_items\tcatalog_share\texposure\texposure_share\texposure_ratio\n"]
    for k in keys:
        e = exp_by.get(k, 0.0)
        cs = counts[k] / tot_items
        es = e / tot_e
        lines.append(f"{'' if k is None else k}\t{counts[k]}\t{cs!r}\t{e!r}\t{es!r}\t{fmt(div(es, cs))}\n")
    return cat, "".join(recs), "".join(lines)


def files():
    data, g, y, yhat, day = fairness_data()
    groups_txt = ["subset\tgroup_value\tn\tbase_rate\tselection_rate\ttpr\tfpr\tprecision\n"]
    summary_txt = ["subset\tdemographic_parity_difference\tdemographic_parity_ratio\t"
                   "equalized_odds_difference\tequalized_odds_ratio\tequal_opportunity_difference\n"]
    subsets = [("all", np.ones(len(g), dtype=bool))] + [(f"day{d}", day == d) for d in range(3)]
    for name, mask in subsets:
        rows = by_group(g[mask], y[mask], yhat[mask])
        for r in rows:
            groups_txt.append(f"{name}\t{'' if r[0] is None else r[0]}\t{r[1]}\t" + "\t".join(fmt(v) for v in r[2:]) + "\n")
        summary_txt.append(name + "\t" + "\t".join(fmt(v) for v in summary(rows)) + "\n")
    cat, recs, expo = exposure_data()
    return {
        "fairness_data.tsv": data,
        "fairness_groups.tsv": "".join(groups_txt),
        "fairness_summary.tsv": "".join(summary_txt),
        "exposure_catalog.tsv": cat,
        "exposure_recs.tsv": recs,
        "exposure_expected.tsv": expo,
    }
