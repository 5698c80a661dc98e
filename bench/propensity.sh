#!/usr/bin/env bash
# Speed of logistic regression in the database. Needs a cluster with the
# extension installed (PG* variables). Heavy at full size: run it under
#   flock /work/tools/bench.lock bash bench/propensity.sh
#   SCALE=0.1 bash bench/propensity.sh        # a tenth of the rows
#
# Data: 10M rows x 20 float8 features and a boolean label (a logistic model
# with known coefficients), about 2 GB. Parallel query as configured (2
# workers per Gather by default). Prints, medians of 5 runs unless stated:
#  1. one Newton pass (the logistic_pass aggregate over every row, timed
#     inside the fit) against count(*) of the same table: bar <= 3x;
#     the FLOP count of a pass over its time;
#  2. the whole fit (describe + passes) against scikit-learn on the same rows
#     exported (binary COPY into numpy): lbfgs (default tol) and
#     newton-cholesky, one run each;
#  3. predict() over every row against a scan computing the same dot product
#     and logistic function in SQL: bar <= 2x; the whole-row form too.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${SCALE:-1}
rows=$(awk -v s="$scale" 'BEGIN {printf "%d", 10000000 * s}')
runs=5
db=pgp_bench_propensity
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
trap 'dropdb --if-exists "$db" >/dev/null 2>&1' EXIT
psql() { command psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# seconds of a statement, from psql's \timing
timed() { psql -c '\timing on' -c "$1" | awk '/^Time:/ {printf "%.3f\n", $2 / 1000}'; }

features=$(seq -s, 1 20 | sed 's/[0-9]\+/f&/g')
echo "== $rows rows x 20 features; load: $(uptime | sed 's/.*load average: //')"
psql <<SQL
SET client_min_messages = warning;
CREATE EXTENSION pg_personalize;
SELECT setseed(0.12);
-- label ~ Bernoulli(sigmoid(-0.5 + sum_i (i / 20 - 0.5) f_i))
CREATE TABLE wide AS
SELECT s.*, random() < 1 / (1 + exp(0.5 - ($(for i in $(seq 1 20); do printf '(%s / 20.0 - 0.5) * f%d + ' "$i" "$i"; done) 0))) AS label
FROM (SELECT $(for i in $(seq 1 20); do printf 'random() * 2 - 1 AS f%d' "$i"; [ "$i" -lt 20 ] && printf ', '; done)
      FROM generate_series(1, $rows)) s;
VACUUM ANALYZE wide;
SQL
psql -At -c "SELECT 'table: ' || pg_size_pretty(pg_table_size('wide')) || ', ' || current_setting('max_parallel_workers_per_gather') || ' workers per Gather, jit ' || current_setting('jit')"

echo
echo "== 1. one Newton pass against count(*)"
count_s=$(for _ in $(seq $runs); do timed "SELECT count(*) FROM wide"; done | median)
fit_log=$(psql -c '\timing on' -c "SELECT personalize.train_classifier('wide', 'wide', 'label', '{$features}', '{\"verbose\": true}')" 2>&1)
pass_s=$(grep -o 'pass [0-9.]* s' <<< "$fit_log" | awk '{print $2}' | median)
passes=$(grep -c 'pass [0-9.]* s' <<< "$fit_log")
describe_s=$(grep -o 'in [0-9.]* s' <<< "$fit_log" | awk '{print $2}')
fit_s=$(awk '/^Time:/ {printf "%.2f", $2 / 1000}' <<< "$fit_log")
# a pass: per row 21 x 22 / 2 multiply-adds for the Hessian, 21 for the gradient, 21 for eta
gflops=$(awk -v r="$rows" -v t="$pass_s" 'BEGIN {printf "%.2f", r * 2 * (231 + 42) / t / 1e9}')
printf '%-34s | %-10s | %s\n' "what" "seconds" "ratio to count(*)"
printf '%-34s | %-10s | %s\n' "count(*) (median of $runs)" "$count_s" "1.00"
printf '%-34s | %-10s | %s\n' "Newton pass (median of $passes)" "$pass_s" "$(awk -v a="$pass_s" -v b="$count_s" 'BEGIN {printf "%.2f (bar 3.00)", a / b}')"
echo "pass arithmetic: $gflops GFLOP/s (Hessian, gradient and linear predictor in double precision)"

echo
echo "== 2. the whole fit against scikit-learn on the same rows"
sk=$(psql -c "COPY (SELECT label::int::float8, $features FROM wide) TO STDOUT (FORMAT binary)" | /usr/bin/python3 -c '
import sys, time, warnings
import numpy as np
from sklearn.linear_model import LogisticRegression
raw = sys.stdin.buffer.read()
dt = np.dtype([("n", ">i2")] + [(f, t) for i in range(21) for f, t in ((f"l{i}", ">i4"), (f"v{i}", ">f8"))])
body = raw[19:len(raw) - 2]
rec = np.frombuffer(body, dtype=dt)
X = np.column_stack([rec[f"v{i}"].astype(np.float64) for i in range(1, 21)])
y = rec["v0"].astype(np.float64)
out = []
for solver in ("lbfgs", "newton-cholesky"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        m = LogisticRegression(penalty=None, solver=solver, max_iter=1000).fit(X, y)
        out.append(f"{time.perf_counter() - t:.2f} {m.n_iter_[0]}")
print(" ".join(out))
')
read -r lbfgs_s lbfgs_it newton_s newton_it <<< "$sk"
printf '%-44s | %-8s | %s\n' "fit" "seconds" "ours / theirs"
printf '%-44s | %-8s | %s\n' "ours: train_classifier ($passes passes)" "$fit_s" "1.00"
printf '%-44s | %-8s | %s\n' "  of which describe (1 scan)" "$describe_s" ""
printf '%-44s | %-8s | %s\n' "sklearn lbfgs ($lbfgs_it iterations, in memory)" "$lbfgs_s" "$(awk -v a="$fit_s" -v b="$lbfgs_s" 'BEGIN {printf "%.2f", a / b}')"
printf '%-44s | %-8s | %s\n' "sklearn newton-cholesky ($newton_it iterations)" "$newton_s" "$(awk -v a="$fit_s" -v b="$newton_s" 'BEGIN {printf "%.2f", a / b}')"

echo
echo "== 3. predict over every row against the same arithmetic in SQL"
dot=$(psql -At -c "SELECT string_agg(format('%s * %s', coefficient, term), ' + ' ORDER BY term = 'intercept' DESC, length(term), term)
                   FROM personalize.coefficients('wide')" | sed 's/ \* intercept//')
sql_s=$(for _ in $(seq $runs); do timed "SELECT sum(1 / (1 + exp(-($dot)))) FROM wide"; done | median)
predict_s=$(for _ in $(seq $runs); do timed "SELECT sum(personalize.predict('wide', $features)) FROM wide"; done | median)
row_s=$(for _ in $(seq $runs); do timed "SELECT sum(personalize.predict('wide', w)) FROM wide w"; done | median)
same=$(psql -At -c "SELECT abs(a - b) <= 1e-9 * abs(b) FROM (SELECT sum(1 / (1 + exp(-($dot)))) AS a, sum(personalize.predict('wide', $features)) AS b FROM wide) s")
printf '%-40s | %-8s | %s\n' "scan" "seconds" "ratio to SQL"
printf '%-40s | %-8s | %s\n' "SQL: sum(1 / (1 + exp(-(b0 + b1 f1 ...))))" "$sql_s" "1.00"
printf '%-40s | %-8s | %s\n' "sum(predict(model, f1, ..., f20))" "$predict_s" "$(awk -v a="$predict_s" -v b="$sql_s" 'BEGIN {printf "%.2f (bar 2.00)", a / b}')"
printf '%-40s | %-8s | %s\n' "sum(predict(model, row))" "$row_s" "$(awk -v a="$row_s" -v b="$sql_s" 'BEGIN {printf "%.2f", a / b}')"
echo "same sums (1e-9): $same; load after: $(uptime | sed 's/.*load average: //')"
