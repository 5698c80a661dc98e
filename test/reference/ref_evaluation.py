"""Reference values for evaluation: ranking metrics (numpy), classification and
calibration (scikit-learn), splits and beyond-accuracy metrics (numpy/scipy)."""
import io
import math

import numpy as np
from scipy.stats import rankdata
from sklearn.calibration import calibration_curve
from sklearn.metrics import (accuracy_score, brier_score_loss, f1_score, log_loss, precision_score,
                             recall_score, roc_auc_score)


def tsv(header, rows):
    out = io.StringIO()
    out.write("\t".join(header) + "\n")
    for row in rows:
        out.write("\t".join(repr(v) if isinstance(v, float) else str(v) for v in row) + "\n")
    return out.getvalue()


def ranking_data():
    rng = np.random.default_rng(31)
    items = 200
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    popularity /= popularity.sum()
    truth, recs = {}, {}
    for user in range(1, 301):
        if user % 10 != 0:  # every tenth user has recommendations but no truth
            size = int(rng.integers(1, 25))
            truth[user] = set(rng.choice(items, size=size, replace=False, p=popularity).tolist())
        if user % 7 != 0:  # every seventh user has truth but no recommendations
            length = int(rng.integers(3, 16))
            recs[user] = rng.choice(items, size=length, replace=False, p=popularity).tolist()
    return truth, recs


def per_user(truth, recs, k):
    rows = []
    for user in sorted(truth):
        relevant = truth[user]
        ranked = recs.get(user, [])[:k]
        hit_ranks = [r + 1 for r, item in enumerate(ranked) if item in relevant]
        cutoff = min(len(relevant), k)
        dcg = sum(1.0 / math.log2(r + 1) for r in hit_ranks)
        idcg = sum(1.0 / math.log2(i + 1) for i in range(1, cutoff + 1))
        ap = sum((j + 1) / r for j, r in enumerate(hit_ranks)) / cutoff
        rows.append((user, len(relevant), len(hit_ranks), len(hit_ranks) / k, len(hit_ranks) / len(relevant),
                     dcg / idcg, ap, 1.0 / hit_ranks[0] if hit_ranks else 0.0))
    return rows


def ranking_files():
    truth, recs = ranking_data()
    files = {
        "evaluation_truth.tsv": tsv(["user_id", "item_id"],
                                    [(u, i) for u in sorted(truth) for i in sorted(truth[u])]),
        "evaluation_recs.tsv": tsv(["user_id", "item_id", "rank"],
                                   [(u, i, r + 1) for u in sorted(recs) for r, i in enumerate(recs[u])]),
    }
    summary, by_user = [], []
    for k in (1, 5, 10, 20):
        rows = per_user(truth, recs, k)
        m = np.array([r[3:] for r in rows], dtype=np.float64)
        recommended = {i for u in recs for i in recs[u][:k]}
        universe = recommended | {i for u in truth for i in truth[u]}
        summary.append((k, len(rows), *[float(x) for x in m[:, :3].mean(axis=0)], float(m[:, 3].mean()),
                        float((m[:, 0] > 0).mean()), float(m[:, 4].mean()),
                        len(recommended) / len(universe), len(recommended) / 250))
        by_user += [(k, *r) for r in rows]
    files["evaluation_ranking.tsv"] = tsv(
        ["k", "users", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "hit_rate_at_k", "mrr_at_k",
         "coverage_at_k", "coverage_of_catalog_250"], summary)
    files["evaluation_ranking_by_user.tsv"] = tsv(
        ["k", "user_id", "relevant", "hits", "precision_at_k", "recall_at_k", "ndcg_at_k", "average_precision",
         "reciprocal_rank"], by_user)
    return files


def ece_and_bins(y, p, bins, strategy):
    """sklearn's calibration_curve, with the bin counts it uses internally."""
    prob_true, prob_pred = calibration_curve(y, p, n_bins=bins, strategy=strategy)
    if strategy == "quantile":
        edges = np.percentile(p, np.linspace(0, 1, bins + 1) * 100)
    else:
        edges = np.linspace(0.0, 1.0, bins + 1)
    binids = np.searchsorted(edges[1:-1], p)
    total = np.bincount(binids, minlength=len(edges))
    nonzero = total != 0
    ece = float(np.sum(total[nonzero] / len(p) * np.abs(prob_true - prob_pred)))
    rows = []
    for b in range(bins):
        lower = edges[b] if strategy == "quantile" or b > 0 else 0.0
        upper = edges[b + 1]
        n = int(total[b])
        rows.append((b + 1, float(lower), float(upper), n,
                     float(p[binids == b].mean()) if n else "", float(y[binids == b].mean()) if n else ""))
    return ece, rows


def classification_files():
    rng = np.random.default_rng(11)
    n = 3000
    latent = rng.standard_normal(n)
    y = (latent + rng.standard_normal(n) * 1.2 > 0.4).astype(int)
    # rounded scores: many ties, and exact 0 and 1 at the ends
    p = np.round(1.0 / (1.0 + np.exp(-(latent * 1.5 - 0.5))), 2)
    summary, bins_rows = [], []
    for threshold, bins, strategy in ((0.5, 10, "uniform"), (0.3, 5, "quantile"), (0.7, 20, "uniform")):
        ece, rows = ece_and_bins(y, p, bins, strategy)
        pred = (p >= threshold).astype(int)
        summary.append((threshold, bins, strategy, n, int(y.sum()), float(roc_auc_score(y, p)),
                        float(log_loss(y, p)), float(brier_score_loss(y, p)), ece,
                        float(accuracy_score(y, pred)), float(precision_score(y, pred)),
                        float(recall_score(y, pred)), float(f1_score(y, pred))))
        bins_rows += [(bins, strategy, *r) for r in rows]
    return {
        "evaluation_predictions.tsv": tsv(["label", "score"], [(bool(a), float(b)) for a, b in zip(y, p)]),
        "evaluation_classification.tsv": tsv(
            ["threshold", "bins", "strategy", "n", "positives", "auc", "log_loss", "brier", "ece", "accuracy",
             "precision", "recall", "f1"], summary),
        "evaluation_reliability.tsv": tsv(
            ["bins", "strategy", "bin", "lower_edge", "upper_edge", "n", "mean_score", "fraction_positive"],
            bins_rows),
    }


def split_files():
    rng = np.random.default_rng(5)
    rows = []
    for user in range(1, 121):
        count = int(rng.integers(1, 30))
        for _ in range(count):
            # days with many ties in time, broken by item then weight
            rows.append((user, int(rng.integers(1, 60)), int(rng.integers(1, 20)), float(rng.integers(1, 4))))
    expected = []
    for fraction, minimum in ((0.2, 5), (0.5, 2), (0.25, 10)):
        by_user = {}
        for row in rows:
            by_user.setdefault(row[0], []).append(row)
        for user, events in sorted(by_user.items()):
            events.sort(key=lambda e: (e[2], e[1], e[3]))
            total = len(events)
            tests = math.ceil(total * fraction) if total >= minimum else 0
            for position, event in enumerate(events, 1):
                expected.append((fraction, minimum, user, event[1], event[2], event[3],
                                 "test" if position > total - tests else "train"))
    return {
        "evaluation_interactions.tsv": tsv(["user_id", "item_id", "day", "weight"], rows),
        "evaluation_split.tsv": tsv(["test_fraction", "min_interactions", "user_id", "item_id", "day", "weight",
                                     "part"], expected),
    }


def beyond_accuracy_files():
    truth, recs = ranking_data()
    k = 10
    training = {(u, i) for u in truth for i in truth[u]}
    users = len({u for u, _ in training})
    counts = {}
    for _, i in training:
        counts[i] = counts.get(i, 0) + 1
    items = sorted(counts)
    ranks = rankdata([counts[i] for i in items], method="min")
    percentile = {i: (r - 1) / (len(items) - 1) for i, r in zip(items, ranks)}
    recommended = [(u, i) for u in recs for i in recs[u][:k]]
    seen = [i for _, i in recommended if i in counts]
    novelty = float(np.mean([-math.log2(counts[i] / users) for i in seen]))
    popularity = float(np.mean([percentile[i] for i in seen]))
    rng = np.random.default_rng(3)
    embeddings = rng.standard_normal((200, 8)).astype(np.float32)
    per_user_diversity = []
    for u in sorted(recs):
        top = recs[u][:k]
        e = embeddings[top].astype(np.float64)
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        sims = e @ e.T
        pairs = [1.0 - sims[a, b] for a in range(len(top)) for b in range(a + 1, len(top))]
        per_user_diversity.append(np.mean(pairs))
    text = lambda v: "[" + ",".join(np.format_float_positional(x, unique=True, trim="-") for x in v) + "]"
    return {
        "evaluation_item_embeddings.tsv": tsv(["item_id", "embedding"],
                                              [(i, text(embeddings[i])) for i in range(200)]),
        "evaluation_beyond_accuracy.tsv": tsv(
            ["k", "users", "novelty", "popularity_percentile", "unseen_in_training", "intra_list_diversity"],
            [(k, len(recs), novelty, popularity, len(recommended) - len(seen),
              float(np.mean(per_user_diversity)))]),
    }


def files():
    result = {}
    for part in (ranking_files, classification_files, split_files, beyond_accuracy_files):
        result.update(part())
    return result
