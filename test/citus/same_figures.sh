#!/usr/bin/env bash
# The read-outs give the same figures on distributed and on local tables: the
# same generated experiment, segments, rankings and predictions are loaded into
# the Citus database (distributed, co-located by unit or user) and into a local
# database on the coordinator (no Citus), and every figure of experiment_results,
# experiment_health, segment_effects, ranking_metrics and fairness_by_group is
# compared, numbers to 1e-12 relative (the order of float sums differs), text
# and counts exactly. Called by test/citus/run.sh with the Citus database name.
set -euo pipefail
cd "$(dirname "$0")/../.."
citus_db=$1
local_db=personalize_local
out=$(mktemp -d)
trap 'rm -rf "$out"; dropdb --if-exists "$local_db" >/dev/null 2>&1' EXIT
dropdb --if-exists "$local_db" >/dev/null 2>&1
createdb "$local_db" 2>/dev/null
psql -X -q -d "$local_db" -c 'CREATE EXTENSION pg_personalize'

load() {  # $1: database, $2: true when Citus
  psql -X -q -v ON_ERROR_STOP=1 -v citus="$2" -d "$1" >/dev/null <<'SQL'
SET client_min_messages = warning;
SELECT personalize.create_experiment('same', '{control,b,c}', '{2,1,1}');
-- 30,000 units, two metrics; unit totals from several outcome rows
INSERT INTO personalize.assignments (experiment, unit_id, arm)
SELECT 'same', u, personalize.arm_for('same', u) FROM generate_series(1, 30000) u;
INSERT INTO personalize.outcomes (experiment, unit_id, metric, value)
SELECT 'same', u, 'revenue', (('x' || substr(md5(u || ':' || k), 1, 8))::bit(32)::bigint % 10000) / 100.0
FROM generate_series(1, 30000, 3) u, generate_series(1, 1 + u % 3) k;
INSERT INTO personalize.outcomes (experiment, unit_id, metric, value)
SELECT 'same', u, 'conversion', 1 FROM generate_series(1, 30000) u WHERE u % 7 = 0 OR u % 11 = 0;
CREATE TABLE segs (unit_id bigint, channel text);
INSERT INTO segs SELECT u, (ARRAY['web', 'app', 'mail'])[1 + u % 3] FROM generate_series(1, 30000) u WHERE u % 10 <> 0;
CREATE TABLE truth (user_id bigint, item_id bigint);
INSERT INTO truth SELECT u, (u * 31 + k * 7) % 300 FROM generate_series(1, 5000) u, generate_series(1, 1 + u % 5) k;
CREATE TABLE recs (user_id bigint, item_id bigint, rank int);
INSERT INTO recs SELECT u, (u * 17 + r * 13) % 300, r FROM generate_series(1, 5000) u, generate_series(1, 10) r;
CREATE TABLE preds (id bigint, grp text, label boolean, score float8);
INSERT INTO preds SELECT i, (ARRAY['a', 'b', 'c', NULL])[1 + i % 4], i % 3 = 0,
       (('x' || substr(md5('s' || i), 1, 8))::bit(32)::bigint % 1000) / 1000.0 FROM generate_series(1, 20000) i;
\if :citus
SELECT create_distributed_table('segs', 'unit_id', colocate_with => 'personalize.assignments');
SELECT create_distributed_table('truth', 'user_id', shard_count => 8);
SELECT create_distributed_table('recs', 'user_id', colocate_with => 'truth');
SELECT create_distributed_table('preds', 'id', shard_count => 8);
\endif
SQL
}
readouts() {  # $1: database -> one line per row, tab-separated
  psql -X -q -At -F $'\t' -v ON_ERROR_STOP=1 -d "$1" <<'SQL'
SELECT 'results', r.* FROM personalize.experiment_results r WHERE experiment = 'same' ORDER BY metric, arm;
SELECT 'health', h.experiment, h.units, h.expected_shares, h.observed_shares, h.srm_chi2, h.srm_p_value
FROM personalize.experiment_health h WHERE experiment = 'same';
SELECT 'segments', s.* FROM personalize.segment_effects('same', 'revenue', 'segs') s ORDER BY segment, arm;
SELECT 'ranking', k, m.* FROM unnest('{1,5,10}'::int[]) k, LATERAL personalize.ranking_metrics('recs', 'truth', k) m ORDER BY k;
SELECT 'fairness', f.* FROM personalize.fairness_by_group('preds', 'grp', 'label', 'score >= 0.5') f ORDER BY group_value;
SQL
}
load "$citus_db" true
load "$local_db" false
readouts "$citus_db" >"$out/citus.tsv"
readouts "$local_db" >"$out/local.tsv"
psql -X -q -d "$citus_db" -c "DELETE FROM personalize.experiments" -c "DROP TABLE segs, truth, recs, preds" >/dev/null
/usr/bin/python3 - "$out/citus.tsv" "$out/local.tsv" <<'PY'
import re, sys
a = [l.rstrip('\n').split('\t') for l in open(sys.argv[1])]
b = [l.rstrip('\n').split('\t') for l in open(sys.argv[2])]
num = re.compile(r'^-?(\d+\.?\d*(e[-+]?\d+)?|Infinity|NaN)$')
def close(x, y):
    if x == y:
        return True
    parts = lambda s: re.split(r'[{},]', s)
    xs, ys = parts(x), parts(y)
    if len(xs) != len(ys):
        return False
    for p, q in zip(xs, ys):
        if p == q:
            continue
        if not (num.match(p) and num.match(q)):
            return False
        p, q = float(p), float(q)
        if abs(p - q) > 1e-12 * max(abs(q), 1e-300):
            return False
    return True
bad = 0
if len(a) != len(b):
    print(f"same figures: FAILED, {len(a)} rows on Citus, {len(b)} local"); sys.exit(1)
for ra, rb in zip(a, b):
    if len(ra) != len(rb) or not all(close(x, y) for x, y in zip(ra, rb)):
        bad += 1
        if bad <= 5:
            print("differs:\n  citus:", ra, "\n  local:", rb)
kinds = sorted({r[0] for r in a})
if bad:
    print(f"same figures: FAILED, {bad} of {len(a)} rows differ"); sys.exit(1)
print(f"same figures: ok ({len(a)} rows of {', '.join(kinds)} equal to 1e-12 on distributed and local tables)")
PY
