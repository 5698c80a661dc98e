#!/usr/bin/env bash
# Logistic regression on UCI Adult against statsmodels and scikit-learn, and a
# T-learner on Hillstrom against a numpy implementation of scikit-uplift's
# metrics. Needs a cluster with the extension (PG* variables); skips without
# ../shared/data.
#
#   bash bench/validate_propensity.sh
#
# Adult: label income > 50K; rows with a missing value ('?') are left out
# (skip_nulls); numeric age, fnlwgt, capital_gain, capital_loss,
# hours_per_week; categorical workclass, education, marital_status,
# occupation, relationship, race, sex, native_country (education_num is left
# out: it is education coded as a number, collinear with the one-hot columns).
#  1. unpenalised, reference level = first level (drop_first), on the rows
#     whose levels have both labels (4 levels have one label value only, 74
#     rows: their estimates do not exist; the extension refuses them, see
#     the first line of output): coefficients and standard errors against
#     statsmodels Logit (Newton, tol 1e-12). Bar: 1e-6 relative.
#  2. L2 (C = 0.5, l2 = 1/C), numeric features standardized, every level
#     one-hot, all complete rows: coefficients against scikit-learn
#     LogisticRegression(solver='newton-cholesky', tol=1e-12) on the same
#     design (StandardScaler on the numeric columns), mapped to the
#     features' own scale. Bar: 1e-5 relative. AUC and log loss on adult.test
#     (complete rows; unseen levels are all zeros in both, OneHotEncoder's
#     handle_unknown='ignore') from personalize.classification_metrics against
#     sklearn's roc_auc_score / log_loss of sklearn's model. Bar: 1e-6.
# Hillstrom: treatment = any e-mail (Mens or Womens) vs No E-Mail; outcomes
# visit and conversion; features recency, history, mens, womens, newbie,
# history_segment, zip_code, channel. A T-learner (one unpenalised logistic
# model per arm); the Qini coefficient, AUUC and uplift at 30% of its scores
# from personalize.uplift_summary against the numpy implementation of
# scikit-uplift 0.5's definitions in test/reference/ref_uplift.py, on the same
# scores (bar 1e-9), and the scores against statsmodels' own T-learner.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${SHARED_DATA:-../shared/data}
if [ ! -f "$data/adult/adult.data" ] || [ ! -f "$data/hillstrom/hillstrom.csv" ]; then
  echo "validate_propensity: $data/adult or $data/hillstrom not found, skipping"
  exit 0
fi
data=$(cd "$data" && pwd)
db=pgp_validate_propensity
out=$(mktemp -d)
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
trap 'dropdb --if-exists "$db" >/dev/null 2>&1; rm -rf "$out"' EXIT
psql() { command psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }

numeric="age,fnlwgt,capital_gain,capital_loss,hours_per_week"
categorical="workclass,education,marital_status,occupation,relationship,race,sex,native_country"
psql <<SQL
SET client_min_messages = warning;
CREATE EXTENSION pg_personalize;
CREATE TABLE adult_raw (age int, workclass text, fnlwgt int, education text, education_num int, marital_status text,
  occupation text, relationship text, race text, sex text, capital_gain int, capital_loss int, hours_per_week int,
  native_country text, income text);
\copy adult_raw FROM PROGRAM 'tail -n +2 "$data/adult/adult.data" | sed -e "s/, /,/g"' WITH (FORMAT csv, NULL '?')
CREATE TABLE adult AS SELECT *, income = '>50K' AS high_income FROM adult_raw;
TRUNCATE adult_raw;
\copy adult_raw FROM PROGRAM 'tail -n +2 "$data/adult/adult.test" | sed -e "s/, /,/g" -e "s/\.\$//"' WITH (FORMAT csv, NULL '?')
CREATE TABLE adult_test AS SELECT *, income = '>50K' AS high_income FROM adult_raw;
-- levels with a single label value: no finite unpenalised estimate
CREATE VIEW adult_estimable AS SELECT * FROM adult
WHERE workclass <> 'Without-pay' AND education <> 'Preschool'
  AND native_country NOT IN ('Holand-Netherlands', 'Outlying-US(Guam-USVI-etc)');
ANALYZE;
SQL

echo "== the full data, unpenalised: the extension's answer"
psql -c "SELECT personalize.train_classifier('refused', 'adult', 'high_income', '{$numeric,$categorical}', '{\"skip_nulls\": true}')" 2>&1 | grep -E "ERROR|DETAIL" || true

feats="{$numeric,$categorical}"
start=$(date +%s.%N)
psql -c "SELECT personalize.train_classifier('adult_mle', 'adult_estimable', 'high_income', '$feats', '{\"skip_nulls\": true, \"tolerance\": 1e-10}')" >/dev/null
mle_s=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.2f", e - s}')
start=$(date +%s.%N)
psql -c "SELECT personalize.train_classifier('adult_l2', 'adult', 'high_income', '$feats', '{\"skip_nulls\": true, \"l2\": 2, \"standardize\": true, \"drop_first\": false, \"tolerance\": 1e-10}')" >/dev/null
l2_s=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.2f", e - s}')
psql -A -F $'\t' -c "SELECT term, coefficient, std_error FROM personalize.coefficients('adult_mle')" >"$out/mle.tsv"
psql -A -F $'\t' -c "SELECT term, coefficient, std_error FROM personalize.coefficients('adult_l2')" >"$out/l2.tsv"
psql -A -F $'\t' -c "SELECT 'ours', (m).n, (m).auc, (m).log_loss FROM (SELECT personalize.classification_metrics(high_income,
  personalize.predict('adult_l2', t)) AS m FROM adult_test t WHERE personalize.predict('adult_l2', t) IS NOT NULL) s" >"$out/test.tsv"

DATA="$data" OUT="$out" MLE_S="$mle_s" L2_S="$l2_s" /usr/bin/python3 - <<'PY'
import os, time, warnings
import numpy as np, pandas as pd, statsmodels.api as sm
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, log_loss
from sklearn.preprocessing import StandardScaler
data, out = os.environ["DATA"], os.environ["OUT"]
cols = ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation", "relationship",
        "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country", "income"]
num = ["age", "fnlwgt", "capital_gain", "capital_loss", "hours_per_week"]
cat = ["workclass", "education", "marital_status", "occupation", "relationship", "race", "sex", "native_country"]
def load(name):
    df = pd.read_csv(f"{data}/adult/{name}", names=cols, skiprows=1, skipinitialspace=True, na_values="?").dropna()
    return df, df.income.str.rstrip(".").eq(">50K").astype(float).values
train, y = load("adult.data")
test, ytest = load("adult.test")
def design(df, levels, drop_first):
    X, names = [np.ones(len(df))], ["intercept"]
    X += [df[c].astype(float).values for c in num]; names += num
    for c in cat:
        for l in levels[c][1 if drop_first else 0:]:
            X.append((df[c] == l).astype(float).values); names.append(f"{c}={l}")
    return np.column_stack(X), names
def ours(path):
    t = pd.read_csv(path, sep="\t", skipfooter=1, engine="python")
    return {r.term: (r.coefficient, r.std_error) for r in t.itertuples()}
def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)

# 1. unpenalised against statsmodels
keep = ~(train.workclass.isin(["Without-pay"]) | train.education.isin(["Preschool"]) |
         train.native_country.isin(["Holand-Netherlands", "Outlying-US(Guam-USVI-etc)"]))
tr, ytr = train[keep.values], y[keep.values]
levels = {c: sorted(tr[c].unique()) for c in cat}
X, names = design(tr, levels, True)
t0 = time.perf_counter()
res = sm.Logit(ytr, X).fit(method="newton", maxiter=100, tol=1e-12, disp=0)
sm_s = time.perf_counter() - t0
mine = ours(f"{out}/mle.tsv")
worst_b = max(rel(mine[n][0], b) for n, b in zip(names, res.params))
worst_se = max(rel(mine[n][1], s) for n, s in zip(names, res.bse))
print(f"== 1. unpenalised logistic regression, {len(ytr)} rows x {len(names)} columns: ours vs statsmodels Logit")
print("term | ours coefficient | statsmodels | ours std error | statsmodels")
for n, b, s in list(zip(names, res.params, res.bse))[:8]:
    print(f"{n} | {mine[n][0]:.10g} | {b:.10g} | {mine[n][1]:.10g} | {s:.10g}")
print(f"... {len(names)} terms; largest relative difference: coefficients {worst_b:.2e}, standard errors {worst_se:.2e} (bar 1e-6)"
      f" -> {'PASS' if max(worst_b, worst_se) <= 1e-6 and len(mine) == len(names) else 'FAIL'}")
print(f"fit time: ours {os.environ['MLE_S']} s (train_classifier, reads the table), statsmodels {sm_s:.2f} s (in memory)")

# 2. L2 against scikit-learn
C = 0.5
levels = {c: sorted(train[c].unique()) for c in cat}
X, names = design(train, levels, False)
Xt, _ = design(test, levels, False)
scaler = StandardScaler().fit(X[:, 1:1 + len(num)])
Xs, Xts = X[:, 1:].copy(), Xt[:, 1:].copy()
Xs[:, :len(num)] = scaler.transform(Xs[:, :len(num)])
Xts[:, :len(num)] = scaler.transform(Xts[:, :len(num)])
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    lr = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(Xs, y)
    sk_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    lbfgs = LogisticRegression(C=C, solver="lbfgs", max_iter=10000).fit(Xs, y)
    lbfgs_s = time.perf_counter() - t0
coef = lr.coef_[0].copy()
coef[:len(num)] /= scaler.scale_
intercept = lr.intercept_[0] - np.sum(lr.coef_[0][:len(num)] * scaler.mean_ / scaler.scale_)
sk = dict(zip(names, np.r_[intercept, coef]))
mine = ours(f"{out}/l2.tsv")
worst = max(rel(mine[n][0], sk[n]) for n in names)
print()
print(f"== 2. L2-penalised (C = {C}), standardized, full one-hot, {len(y)} rows x {len(names)} columns: ours vs scikit-learn")
print("term | ours | sklearn newton-cholesky")
for n in names[:6]:
    print(f"{n} | {mine[n][0]:.10g} | {sk[n]:.10g}")
print(f"... largest relative difference {worst:.2e} (bar 1e-5) -> {'PASS' if worst <= 1e-5 and len(mine) == len(names) else 'FAIL'}")
p = lr.predict_proba(Xts)[:, 1]
auc, ll = roc_auc_score(ytest, p), log_loss(ytest, p)
t = pd.read_csv(f"{out}/test.tsv", sep="\t", skipfooter=1, engine="python")
n_ours, auc_ours, ll_ours = int(t.iloc[0, 1]), float(t.iloc[0, 2]), float(t.iloc[0, 3])
print(f"adult.test ({len(ytest)} complete rows; ours scored {n_ours}): AUC ours {auc_ours:.12f} sklearn {auc:.12f}; "
      f"log loss ours {ll_ours:.12f} sklearn {ll:.12f}; differences {abs(auc_ours - auc):.1e}, {abs(ll_ours - ll):.1e} (bar 1e-6) -> "
      f"{'PASS' if max(abs(auc_ours - auc), abs(ll_ours - ll)) <= 1e-6 and n_ours == len(ytest) else 'FAIL'}")
print(f"fit time: ours {os.environ['L2_S']} s, sklearn newton-cholesky {sk_s:.2f} s, lbfgs {lbfgs_s:.2f} s "
      f"(lbfgs differs from the exact optimum by {max(abs(a - b) for a, b in zip(lbfgs.coef_[0], lr.coef_[0])):.1e} at its default tol)")
PY

# ---------------------------------------------------------------- Hillstrom
hfeat="{recency,history,mens,womens,newbie,history_segment,zip_code,channel}"
psql <<SQL
SET client_min_messages = warning;
CREATE TABLE hillstrom_raw (recency int, history_segment text, history float8, mens int, womens int, zip_code text,
  newbie int, channel text, segment text, visit int, conversion int, spend float8);
\copy hillstrom_raw FROM '$data/hillstrom/hillstrom.csv' WITH (FORMAT csv, HEADER)
CREATE TABLE hillstrom AS
SELECT row_number() OVER () AS id, h.*, segment <> 'No E-Mail' AS emailed FROM hillstrom_raw h;
-- two thirds to train, one third to read out
CREATE VIEW hillstrom_train AS SELECT * FROM hillstrom WHERE id % 3 <> 0;
CREATE VIEW hillstrom_test AS SELECT * FROM hillstrom WHERE id % 3 = 0;
ANALYZE hillstrom;
SQL
for outcome in visit conversion; do
  start=$(date +%s.%N)
  psql -c "SELECT personalize.train_uplift('hill_$outcome', 'hillstrom_train', '$outcome', 'emailed', '$hfeat')" >/dev/null
  echo "$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.2f", e - s}')" >"$out/hill_${outcome}_s"
  psql -A -F $'\t' -c "SELECT t.id, t.$outcome, t.emailed::int, s.uplift FROM hillstrom_test t
    JOIN personalize.uplift_scores('hill_$outcome', 'hillstrom_test', 'id') s ON s.subject_id = t.id ORDER BY t.id" >"$out/hill_${outcome}_scores.tsv"
  psql -A -F $'\t' -c "SELECT s.* FROM (SELECT (personalize.uplift_summary(personalize.uplift_sample(t.$outcome = 1, t.emailed,
    personalize.uplift_score('hill_$outcome', t)), 0.3, st.strategy)).*, st.strategy FROM hillstrom_test t,
    (VALUES ('overall'), ('by_group')) st(strategy) GROUP BY st.strategy) s" >"$out/hill_${outcome}_summary.tsv"
done

DATA="$data" OUT="$out" REF="$PWD/test/reference" /usr/bin/python3 - <<'PY'
import os, sys, time
import numpy as np, pandas as pd, statsmodels.api as sm
from scipy.special import expit
data, out = os.environ["DATA"], os.environ["OUT"]
sys.path.insert(0, os.environ["REF"])
import ref_uplift as ru
h = pd.read_csv(f"{data}/hillstrom/hillstrom.csv")
h["id"] = np.arange(1, len(h) + 1)
h["t"] = (h.segment != "No E-Mail").astype(int)
train, test = h[h.id % 3 != 0], h[h.id % 3 == 0]
num = ["recency", "history", "mens", "womens", "newbie"]
cat = ["history_segment", "zip_code", "channel"]
print()
print(f"== 3. Hillstrom T-learner (any e-mail vs none): {len(train)} rows to train, {len(test)} to read out")
print("outcome | measure | ours (SQL) | numpy (sklift definitions) on our scores | |difference| (bar 1e-9) | statsmodels T-learner's scores")
worst = 0.0
for outcome in ("visit", "conversion"):
    sc = pd.read_csv(f"{out}/hill_{outcome}_scores.tsv", sep="\t", skipfooter=1, engine="python")
    summ = pd.read_csv(f"{out}/hill_{outcome}_summary.tsv", sep="\t", skipfooter=1, engine="python").set_index("strategy")
    y, t, s = sc[outcome].values.astype(int), sc["emailed"].values.astype(int), sc["uplift"].values
    # statsmodels' own T-learner on the same design
    def design(df, levels):
        return np.column_stack([np.ones(len(df))] + [df[c].astype(float).values for c in num] +
                               [(df[c] == lv).astype(float).values for c in cat for lv in levels[c][1:]])
    t0 = time.perf_counter()
    params = {}
    for arm in (0, 1):
        part = train[train.t == arm]
        levels = {c: sorted(part[c].unique()) for c in cat}
        params[arm] = (levels, sm.Logit(part[outcome].values.astype(float), design(part, levels)).fit(
            method="newton", tol=1e-12, maxiter=100, disp=0).params)
    sm_s = time.perf_counter() - t0
    te = test.set_index("id").loc[sc["id"]]
    s_sm = expit(design(te, params[1][0]) @ params[1][1]) - expit(design(te, params[0][0]) @ params[0][1])
    for strategy in ("overall", "by_group"):
        rows = [("AUUC", summ.loc[strategy, "auuc"], ru.normalized_area(y, t, s, "uplift"), ru.normalized_area(y, t, s_sm, "uplift")),
                ("Qini coefficient", summ.loc[strategy, "qini_coefficient"], ru.normalized_area(y, t, s, "qini"),
                 ru.normalized_area(y, t, s_sm, "qini")),
                (f"uplift@30% {strategy}", summ.loc[strategy, "uplift_at_k"], ru.uplift_at_k(y, t, s, 0.3, strategy),
                 ru.uplift_at_k(y, t, s_sm, 0.3, strategy))]
        for name, ours, ref, sm_value in rows:
            if strategy == "by_group" and name != f"uplift@30% {strategy}":
                continue
            d = abs(ours - ref)
            worst = max(worst, d)
            print(f"{outcome} | {name} | {ours:.12f} | {ref:.12f} | {d:.1e} | {sm_value:.12f}")
    # the tie rule against scikit-uplift's input-order rule
    same = all(ru.uplift_at_k(y, t, s, 0.3, st) == ru.uplift_at_k(y, t, s, 0.3, st, ru.sklift_order(s)) for st in ("overall", "by_group"))
    print(f"{outcome}: scores vs statsmodels' T-learner: largest |difference| {np.max(np.abs(s - s_sm)):.1e}; "
          f"uplift@30% with sklift's tie order {'identical' if same else 'DIFFERENT'}; "
          f"fit: ours {open(f'{out}/hill_{outcome}_s').read().strip()} s (both arms, reads the table), statsmodels {sm_s:.2f} s")
print(f"largest difference {worst:.1e} (bar 1e-9) -> {'PASS' if worst <= 1e-9 else 'FAIL'}")
PY
