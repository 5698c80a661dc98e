# Sourced by the benchmarks (PG* variables name the cluster): a scratch
# database, psql on it, a median, and the power-law interaction set of
# bench/models.sh at SCALE.

# bench_db NAME: a fresh database NAME, dropped on exit; psql runs in it.
bench_db() {
  db=$1
  dropdb --if-exists "$db" >/dev/null 2>&1
  createdb "$db"
  trap 'dropdb --if-exists "$db" >/dev/null 2>&1' EXIT
}
psql() { command psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# Sets users, items and rows: 200,000 x 50,000 x 10,000,000 at SCALE 1.
powerlaw_size() {
  local s=${SCALE:-1}
  users=$(awk -v s="$s" 'BEGIN {printf "%d", 200000 * s}')
  items=$(awk -v s="$s" 'BEGIN {printf "%d", 50000 * (s < 1 ? 0.5 + s / 2 : 1)}')
  rows=$(awk -v s="$s" 'BEGIN {printf "%d", 10000000 * s}')
}

# powerlaw_sql TABLE N: SQL creating TABLE with N rows of (user_id, item_id,
# weight 1), users and items drawn with power-law popularity.
powerlaw_sql() {
  cat <<SQL
CREATE TABLE $1 AS
SELECT floor($users * power(random(), 1.5))::bigint AS user_id,
       floor($items * power(random(), 2.5))::bigint AS item_id,
       1::real AS weight
FROM generate_series(1, $2);
SQL
}
