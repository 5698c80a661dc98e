"""Reference values for logistic regression and calibration (sql/propensity.sql).

Synthetic data from a fixed seed: numeric, integer, boolean, a two-element array and two
categorical features, a sample weight, a binary label. Holdout rows carry a level unseen in
training ("central": all zeros in the one-hot columns). Five training rows have a NULL: every
configuration leaves them out (option skip_nulls), except the row whose only NULL is its weight,
which counts where no weight column is used.

Configurations (design: intercept, numeric columns, array elements, one-hot columns; the first
level of each categorical feature is the reference when drop_first):
  mle       unpenalised, drop_first: statsmodels Logit (Newton): coefficients, standard
            errors, z, p-values, 95% Wald intervals
  weighted  unpenalised, drop_first, sample weights times class weight 2 for positives:
            statsmodels GLM(Binomial, freq_weights)
  l2        l2 = 2 (sklearn C = 0.5), numeric features standardized (StandardScaler), every
            level one-hot: scikit-learn LogisticRegression(newton-cholesky, tol 1e-12),
            mapped back to the features' scale; standard errors from numpy: the inverse of
            Xᵀ diag(p(1 - p)) X + λ I (intercept unpenalised) on the standardized design,
            mapped by the same linear map
  balanced  unpenalised, no intercept, class_weight "balanced": scikit-learn
            LogisticRegression(penalty=None, class_weight="balanced", fit_intercept=False)

Holdout scores of the mle model: statsmodels' linear predictor and probability; calibrated on
the holdout rows themselves: Platt's sigmoid (a, b) minimizing the cross-entropy against Platt's
smoothed targets (scipy BFGS, gtol 1e-10), isotonic regression (sklearn IsotonicRegression,
out_of_bounds="clip") on the linear predictor, as CalibratedClassifierCV(cv="prefit").
"""
import numpy as np
import statsmodels.api as sm
from scipy.optimize import minimize
from scipy.special import expit
from scipy.stats import norm
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

SEG = ["east", "north", "south", "west"]
TIER = ["bronze", "gold", "silver"]


def make_rows(rng, n, unseen=False):
    x_num = rng.normal(10.0, 3.0, n)
    x_int = rng.integers(0, 51, n)
    x_flag = rng.random(n) < 0.4
    x_vec = rng.normal(0.0, 1.0, (n, 2))
    seg_levels = SEG + (["central"] if unseen else [])
    seg_p = [0.1, 0.4, 0.3, 0.2] + ([0.0] if unseen else [])
    if unseen:
        seg_p = [0.1, 0.35, 0.25, 0.2, 0.1]
    seg = rng.choice(seg_levels, n, p=seg_p)
    tier = rng.choice(TIER, n, p=[0.5, 0.2, 0.3])
    w = rng.uniform(0.5, 2.0, n)
    eta = (-2.0 + 0.15 * (x_num - 10) + 0.02 * x_int + 0.6 * x_flag + 0.8 * x_vec[:, 0] - 0.5 * x_vec[:, 1]
           + np.select([seg == "north", seg == "south", seg == "west"], [0.4, -0.3, 0.9], 0.0)
           + np.select([tier == "gold", tier == "silver"], [1.2, 0.5], 0.0))
    y = rng.random(n) < expit(eta)
    return dict(x_num=x_num, x_int=x_int, x_flag=x_flag, x_vec=x_vec, seg=seg, tier=tier, w=w, y=y)


def tsv(rows, ids, nulls=()):
    out = ["id\ty\tw\tx_num\tx_int\tx_flag\tx_vec\tseg\ttier\n"]
    for i, rid in enumerate(ids):
        f = {"y": "t" if rows["y"][i] else "f", "w": repr(float(rows["w"][i])), "x_num": repr(float(rows["x_num"][i])),
             "x_int": str(int(rows["x_int"][i])), "x_flag": "t" if rows["x_flag"][i] else "f",
             "x_vec": "{%r,%r}" % (float(rows["x_vec"][i, 0]), float(rows["x_vec"][i, 1])),
             "seg": rows["seg"][i], "tier": rows["tier"][i]}
        for col, at in nulls:
            if at == i:
                f[col] = "" if col != "x_vec" else "{%r,NULL}" % float(rows["x_vec"][i, 0])
        out.append("\t".join([str(rid)] + [f[c] for c in ["y", "w", "x_num", "x_int", "x_flag", "x_vec", "seg", "tier"]]) + "\n")
    return "".join(out)


def design(rows, drop_first, intercept=True):
    cols, names = [], []
    if intercept:
        cols.append(np.ones(len(rows["y"])))
        names.append("intercept")
    cols += [rows["x_num"], rows["x_int"].astype(float), rows["x_flag"].astype(float), rows["x_vec"][:, 0], rows["x_vec"][:, 1]]
    names += ["x_num", "x_int", "x_flag", "x_vec[1]", "x_vec[2]"]
    for feat, levels in (("seg", SEG), ("tier", TIER)):
        for lv in levels[1 if drop_first else 0:]:
            cols.append((rows[feat] == lv).astype(float))
            names.append(f"{feat}={lv}")
    return np.column_stack(cols), names


def fmt(x):
    return repr(float(x))


def table_lines(config, names, coef, se):
    out = []
    for n, b, s in zip(names, coef, se):
        z = b / s
        p = 2 * norm.sf(abs(z))
        q = norm.ppf(0.975)
        out.append(f"{config}\t{n}\t{fmt(b)}\t{fmt(s)}\t{fmt(z)}\t{fmt(p)}\t{fmt(b - q * s)}\t{fmt(b + q * s)}\n")
    return out


def files():
    rng = np.random.default_rng(20261212)
    train = make_rows(rng, 2000)
    hold = make_rows(rng, 1000, unseen=True)
    # five more rows, each with one NULL (a numeric, a level, the label, an array element, the
    # weight): skip_nulls leaves them out, except the NULL weight when no weight is used
    nulls = [("x_num", 0), ("seg", 1), ("y", 2), ("x_vec", 3), ("w", 4)]
    extra = make_rows(rng, 5)
    weighted_rows = train
    train = {k: np.concatenate([v, extra[k][4:5]]) for k, v in train.items()}
    y = train["y"].astype(float)
    lines = ["config\tterm\tcoefficient\tstd_error\tz\tp_value\tci_low\tci_high\n"]

    # mle
    X, names = design(train, True)
    res = sm.Logit(y, X).fit(method="newton", tol=1e-12, maxiter=100, disp=0)
    ci = res.conf_int(0.05)
    for n, b, s, z, p, lo, hi in zip(names, res.params, res.bse, res.tvalues, res.pvalues, ci[:, 0], ci[:, 1]):
        lines.append(f"mle\t{n}\t{fmt(b)}\t{fmt(s)}\t{fmt(z)}\t{fmt(p)}\t{fmt(lo)}\t{fmt(hi)}\n")

    # weighted: sample weights x class weight 2 for positives
    Xw, _ = design(weighted_rows, True)
    fw = weighted_rows["w"] * np.where(weighted_rows["y"], 2.0, 1.0)
    glm = sm.GLM(weighted_rows["y"].astype(float), Xw, family=sm.families.Binomial(), freq_weights=fw).fit(tol=1e-13, maxiter=100)
    ci = glm.conf_int(0.05)
    for n, b, s, z, p, lo, hi in zip(names, glm.params, glm.bse, glm.tvalues, glm.pvalues, ci[:, 0], ci[:, 1]):
        lines.append(f"weighted\t{n}\t{fmt(b)}\t{fmt(s)}\t{fmt(z)}\t{fmt(p)}\t{fmt(lo)}\t{fmt(hi)}\n")

    # l2, standardized numeric columns and array elements, full one-hot
    X, names = design(train, False)
    nd = 6                                         # intercept + 5 dense
    mean = X[:, 1:nd].mean(axis=0)
    scale = X[:, 1:nd].std(axis=0)
    Xs = X.copy()
    Xs[:, 1:nd] = (X[:, 1:nd] - mean) / scale
    lam = 2.0
    lr = LogisticRegression(C=1.0 / lam, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(Xs[:, 1:], y)
    beta = np.r_[lr.intercept_, lr.coef_[0]]
    p = expit(Xs @ beta)
    pen = lam * np.eye(len(beta))
    pen[0, 0] = 0
    V = np.linalg.inv(Xs.T @ (Xs * (p * (1 - p))[:, None]) + pen)
    A = np.eye(len(beta))                          # raw = A @ standardized
    A[1:nd, 1:nd] = np.diag(1 / scale)
    A[0, 1:nd] = -mean / scale
    raw, Vraw = A @ beta, A @ V @ A.T
    lines += table_lines("l2", names, raw, np.sqrt(np.diag(Vraw)))

    # balanced, no intercept
    X, names = design(train, True, intercept=False)
    lb = LogisticRegression(penalty=None, class_weight="balanced", fit_intercept=False, solver="newton-cholesky",
                            tol=1e-12, max_iter=1000).fit(X, y)
    beta = lb.coef_[0]
    cw = np.where(train["y"], len(y) / (2 * y.sum()), len(y) / (2 * (len(y) - y.sum())))
    p = expit(X @ beta)
    V = np.linalg.inv(X.T @ (X * (cw * p * (1 - p))[:, None]))
    lines += table_lines("balanced", names, beta, np.sqrt(np.diag(V)))

    # holdout scores of the mle model, then calibrations fitted on the holdout rows
    X, _ = design(train, True)
    Xh, _ = design(hold, True)
    eta = Xh @ res.params
    yh = hold["y"].astype(float)
    n1 = yh.sum()
    n0 = len(yh) - n1
    t = np.where(yh > 0, (n1 + 1) / (n1 + 2), 1 / (n0 + 2))

    def platt_loss(ab):
        z = ab[0] * eta + ab[1]
        return np.sum(t * np.logaddexp(0, z) + (1 - t) * np.logaddexp(0, -z))

    def platt_grad(ab):
        d = expit(ab[0] * eta + ab[1]) - (1 - t)
        return np.array([np.sum(d * eta), np.sum(d)])

    ab = minimize(platt_loss, [0.0, np.log((n0 + 1) / (n1 + 1))], jac=platt_grad, method="BFGS",
                  options={"gtol": 1e-10, "maxiter": 10000}).x
    iso = IsotonicRegression(out_of_bounds="clip").fit(eta, yh)
    scores = ["id\tlog_odds\tprobability\tplatt\tisotonic\n"]
    for i in range(len(yh)):
        scores.append(f"{i + 1}\t{fmt(eta[i])}\t{fmt(expit(eta[i]))}\t{fmt(expit(-(ab[0] * eta[i] + ab[1])))}\t"
                      f"{fmt(iso.predict([eta[i]])[0])}\n")

    train_text = tsv(weighted_rows, range(1, 2001)) + tsv(extra, range(2001, 2006), nulls).split("\n", 1)[1]
    return {
        "propensity_train.tsv": train_text,
        "propensity_holdout.tsv": tsv(hold, range(1, 1001)),
        "propensity_coefficients.tsv": "".join(lines),
        "propensity_scores.tsv": "".join(scores),
    }
