#!/usr/bin/env bash
# Validation on MovieLens small (../shared/data/movielens-small, beside the repository):
# rating >= 4 as interaction, per-user time split (last 20% to test, users with >= 5
# interactions), a popularity recommender written in plain SQL, and ranking_metrics at 10 —
# printed beside the same figures computed independently in Python (numpy).
#   bash bench/validate_evaluation.sh     (PG* variables point at a server with pg_personalize)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${SHARED_DATA:-../shared/data}/movielens-small
if [ ! -f "$data/ratings.csv" ]; then
  echo "skipped: $data/ratings.csv not found (the shared data sets live beside the repository)"
  exit 0
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

psql -X -q -v ON_ERROR_STOP=1 -v ratings="$data/ratings.csv" -v outfile="$out/ours.tsv" <<'SQL'
CREATE EXTENSION IF NOT EXISTS pg_personalize;
SET client_min_messages = warning;
DROP TABLE IF EXISTS ml_ratings, ml_split, ml_recs;
CREATE TABLE ml_ratings (user_id bigint, item_id bigint, rating float8, ts bigint);
\set copy '\\copy ml_ratings FROM ' :'ratings' ' WITH (FORMAT csv, HEADER)'
:copy
CREATE TABLE ml_split AS
SELECT * FROM personalize.split_by_user_time(
  'SELECT user_id, item_id, to_timestamp(ts) AS occurred_at FROM ml_ratings WHERE rating >= 4', 0.2, 5);
-- popularity: most-interacted training items, each user's own training items excluded
CREATE TABLE ml_recs AS
WITH popular AS (SELECT item_id, count(*) AS n FROM ml_split WHERE part = 'train' GROUP BY item_id),
     test_users AS (SELECT DISTINCT user_id FROM ml_split WHERE part = 'test')
SELECT u.user_id, p.item_id, p.rank
FROM test_users u,
LATERAL (SELECT item_id, row_number() OVER (ORDER BY n DESC, item_id)::int AS rank
         FROM popular
         WHERE NOT EXISTS (SELECT 1 FROM ml_split s WHERE s.user_id = u.user_id AND s.item_id = popular.item_id
                             AND s.part = 'train')
         ORDER BY n DESC, item_id LIMIT 10) p;
\set copy '\\copy (SELECT (SELECT count(*) FROM ml_split WHERE part = ''train'') AS train_rows, (SELECT count(DISTINCT user_id) FROM ml_split WHERE part = ''test'') AS test_users, m.* FROM personalize.ranking_metrics(''ml_recs'', ''SELECT user_id, item_id FROM ml_split WHERE part = ''''test'''''', 10) m) TO ' :'outfile' ' WITH (FORMAT csv, DELIMITER E''\\t'', HEADER)'
:copy
DROP TABLE ml_ratings, ml_split, ml_recs;
SQL

/usr/bin/python3 - "$data/ratings.csv" "$out/ours.tsv" <<'PY'
import csv, math, sys
import numpy as np
ratings, ours_path = sys.argv[1], sys.argv[2]
rows = [r for r in csv.DictReader(open(ratings)) if float(r["rating"]) >= 4]
by_user = {}
for r in rows:
    by_user.setdefault(int(r["userId"]), []).append((int(r["timestamp"]), int(r["movieId"])))
train, test = [], {}
for u, events in by_user.items():
    events.sort()
    n = len(events)
    t = math.ceil(n * 0.2) if n >= 5 else 0
    train += [(u, i) for _, i in events[:n - t]]
    if t:
        test[u] = {i for _, i in events[n - t:]}
counts = {}
for _, i in train:
    counts[i] = counts.get(i, 0) + 1
order = sorted(counts, key=lambda i: (-counts[i], i))
seen = {}
for u, i in train:
    seen.setdefault(u, set()).add(i)
k = 10
p, r, nd, ap, hit, rr = [], [], [], [], [], []
recommended = set()
for u, truth in test.items():
    recs = [i for i in order if i not in seen.get(u, set())][:k]
    recommended |= set(recs)
    hits = [rank for rank, i in enumerate(recs, 1) if i in truth]
    c = min(len(truth), k)
    p.append(len(hits) / k); r.append(len(hits) / len(truth))
    nd.append(sum(1 / math.log2(h + 1) for h in hits) / sum(1 / math.log2(i + 1) for i in range(1, c + 1)))
    ap.append(sum((j + 1) / h for j, h in enumerate(hits)) / c)
    hit.append(1.0 if hits else 0.0); rr.append(1 / hits[0] if hits else 0.0)
universe = recommended | {i for t in test.values() for i in t}
reference = {"train_rows": len(train), "test_users": len(test), "users": len(test),
             "precision_at_k": np.mean(p), "recall_at_k": np.mean(r), "ndcg_at_k": np.mean(nd),
             "map_at_k": np.mean(ap), "hit_rate_at_k": np.mean(hit), "mrr_at_k": np.mean(rr),
             "coverage_at_k": len(recommended) / len(universe)}
ours = next(csv.DictReader(open(ours_path), delimiter="\t"))
print("MovieLens small, rating >= 4, per-user time split (20%, >= 5), popularity, k = 10")
print(f"{'figure':<16}{'pg_personalize':>22}{'python (numpy)':>22}{'abs diff':>12}")
worst = 0.0
for key, ref in reference.items():
    val = float(ours[key])
    worst = max(worst, abs(val - ref))
    print(f"{key:<16}{val:>22.15g}{float(ref):>22.15g}{abs(val - ref):>12.1e}")
print("agree to 1e-9" if worst <= 1e-9 else f"DIFFER: largest difference {worst:.3g}")
sys.exit(0 if worst <= 1e-9 else 1)
PY
