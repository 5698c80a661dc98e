"""Reference values for drift (personalize.model_drift, psi, ks_statistic), computed with
numpy and scipy from generated interactions, following doc/operations.md:

- item_popularity_ks: items ranked by training popularity (descending, ties by ascending id);
  the largest gap between the cumulative training shares and the cumulative window shares
  (window weight on items the model knows). Cross-checked against scipy.stats.ks_2samp on the
  same data as samples of ranks, each row repeated by its integer weight.
- item_popularity_psi: the ranked items cut into 10 bins, an item going to bin
  min(9, floor(10 * training share of the items ranked before it)); then
  PSI = sum over bins non-empty on either side of (a - e) ln(a / e), shares floored at 1e-4.
- unknown_users / unknown_items: share of window rows whose user / item the model lacks.
- volume_ratio: window rows / (reference rows * window / (window start - oldest reference row)).
- score_psi: reference scores (logged before the window) cut at numpy.quantile deciles, a score
  going to searchsorted(edges, score, "right"); the PSI above over those 10 bins.
"""
import numpy as np
from scipy import stats

AS_OF = 1_780_000_000            # unix seconds: the end of the window
WINDOW = 3 * 86400               # recent_window = 3 days
START = AS_OF - WINDOW
FLOOR = 1e-4


def psi(expected, actual):
    expected = np.asarray(expected, dtype=float)
    actual = np.asarray(actual, dtype=float)
    keep = (expected > 0) | (actual > 0)
    e = np.maximum(expected / expected.sum(), FLOOR)[keep]
    a = np.maximum(actual / actual.sum(), FLOOR)[keep]
    return float(np.sum((a - e) * np.log(a / e)))


def ks(expected, actual):
    expected = np.asarray(expected, dtype=float)
    actual = np.asarray(actual, dtype=float)
    return float(np.max(np.abs(np.cumsum(expected / expected.sum()) - np.cumsum(actual / actual.sum()))))


def data():
    rng = np.random.default_rng(20261130)
    n_train, n_window = 3000, 800
    # training: 200 users, items 0..59 with a Zipf-like popularity
    pop = 1.0 / np.arange(1, 61) ** 1.1
    train_items = rng.choice(60, size=n_train, p=pop / pop.sum())
    train_users = rng.integers(0, 200, size=n_train)
    train_weights = rng.integers(1, 4, size=n_train)
    train_times = rng.integers(START - 20 * 86400, START + 1, size=n_train)     # up to and including START
    # window: popularity shifted towards the tail, 40 rows on items 60..64 and 100 by users 200..219
    shifted = 1.0 / np.arange(1, 61) ** 0.6
    window_items = rng.choice(60, size=n_window, p=shifted[::-1] / shifted.sum())
    window_items[:40] = rng.integers(60, 65, size=40)
    window_users = rng.integers(0, 200, size=n_window)
    window_users[40:140] = rng.integers(200, 220, size=100)
    window_weights = rng.integers(1, 4, size=n_window)
    window_times = rng.integers(START + 1, AS_OF + 1, size=n_window)             # (START, AS_OF]
    users = np.concatenate([train_users, window_users])
    items = np.concatenate([train_items, window_items])
    weights = np.concatenate([train_weights, window_weights])
    times = np.concatenate([train_times, window_times])
    # logged scores of a propensity model: before the window and in it
    ref_scores = rng.beta(2.0, 5.0, size=2000)
    win_scores = rng.beta(2.6, 4.5, size=500)
    ref_logged = rng.integers(START - 10 * 86400, START + 1, size=2000)
    win_logged = rng.integers(START + 1, AS_OF + 1, size=500)
    return users, items, weights, times, ref_scores, win_scores, ref_logged, win_logged


def drift_expected(users, items, weights, times, ref_scores, win_scores):
    train = times <= START
    window = (times > START) & (times <= AS_OF)
    known_items = sorted(set(items[train].tolist()))
    known_users = set(users[train].tolist())
    popularity = {i: 0 for i in known_items}
    for i, w in zip(items[train], weights[train]):
        popularity[int(i)] += int(w)
    ranked = sorted(known_items, key=lambda i: (-popularity[i], i))
    rank_of = {item: r for r, item in enumerate(ranked)}
    e = np.array([popularity[i] for i in ranked], dtype=float)
    a = np.zeros(len(ranked))
    for i, w in zip(items[window], weights[window]):
        if int(i) in rank_of:
            a[rank_of[int(i)]] += w

    item_ks = ks(e, a)
    train_sample = np.repeat([rank_of[int(i)] for i in items[train]], weights[train])
    window_known = np.array([int(i) in rank_of for i in items[window]])
    window_sample = np.repeat([rank_of[int(i)] for i in items[window][window_known]], weights[window][window_known])
    scipy_ks = stats.ks_2samp(train_sample, window_sample).statistic
    assert abs(scipy_ks - item_ks) < 1e-12, (scipy_ks, item_ks)

    before = np.concatenate([[0.0], np.cumsum(e)[:-1]])
    bins = np.minimum(9, np.floor(10 * (before / e.sum())).astype(int))
    item_psi = psi(np.bincount(bins, weights=e, minlength=10), np.bincount(bins, weights=a, minlength=10))

    unknown_users = float(np.mean([int(u) not in known_users for u in users[window]]))
    unknown_items = float(np.mean([int(i) not in rank_of for i in items[window]]))
    expected_rows = train.sum() * WINDOW / (START - times[train].min())
    volume = float(window.sum() / expected_rows)

    edges = np.quantile(ref_scores, np.arange(1, 10) / 10)
    score_psi = psi(np.bincount(np.searchsorted(edges, ref_scores, side="right"), minlength=10),
                    np.bincount(np.searchsorted(edges, win_scores, side="right"), minlength=10))
    return [("item_popularity_psi", item_psi), ("item_popularity_ks", item_ks),
            ("unknown_users", unknown_users), ("unknown_items", unknown_items),
            ("volume_ratio", volume), ("score_psi", score_psi)]


def histograms():
    """psi() and ks_statistic() on their own: random histograms, some with empty bins."""
    rng = np.random.default_rng(7)
    lines = ["id\texpected\tactual\tpsi\tks\n"]
    for case in range(12):
        n = int(rng.integers(2, 15))
        e = rng.integers(0, 50, size=n).astype(float)
        a = rng.integers(0, 50, size=n).astype(float)
        if case % 4 == 0:
            e[0] = 0.0
            a[-1] = 0.0
        e[1] += 1.0                                      # neither side empty
        a[1] += 1.0
        if case == 5:
            a = e * 3.0                                  # the same shares: PSI and KS are 0
        lines.append("%d\t{%s}\t{%s}\t%r\t%r\n" % (case, ",".join(repr(x) for x in e), ",".join(repr(x) for x in a),
                                                   psi(e, a), ks(e, a)))
    return "".join(lines)


def files():
    users, items, weights, times, ref_scores, win_scores, ref_logged, win_logged = data()
    interactions = ["user_id\titem_id\tweight\toccurred_at\n"] + [
        "%d\t%d\t%d\t%d\n" % row for row in zip(users, items, weights, times)]
    scores = ["score\tlogged_at\n"] + ["%r\t%d\n" % (float(s), t) for s, t in
                                      zip(np.concatenate([ref_scores, win_scores]), np.concatenate([ref_logged, win_logged]))]
    expected = ["metric\tvalue\n"] + ["%s\t%r\n" % (name, value) for name, value in
                                     drift_expected(users, items, weights, times, ref_scores, win_scores)]
    return {
        "drift_interactions.tsv": "".join(interactions),
        "drift_scores.tsv": "".join(scores),
        "drift_expected.tsv": "".join(expected),
        "drift_histograms.tsv": histograms(),
    }
