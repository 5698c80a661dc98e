#!/usr/bin/env bash
# Crash safety: a backend killed with SIGKILL while it trains (reading its
# source, solving, storing the new active version), while a version is being
# activated and while forget runs; and the server restarted in immediate mode
# during a training. A SIGKILLed backend makes the postmaster end every session
# and recover from WAL. After each crash: no partial version in the registry,
# exactly one active version per name, every stored model readable, serving
# answers as before, and consent history, protected rows, the prediction log
# and the erasure audit unchanged. Then the same operations complete.
#
# A checkpoint just before the crash writes the victim's uncommitted rows to
# disk, so recovery has to recognise them as never committed.
# The victim stops at a chosen point because test-only triggers and a source
# function (in a throwaway database) RAISE NOTICE and sleep there; its stderr
# tells when it has arrived. Needs a superuser (PG* variables, as in
# test/in_cluster.sh); the restart also needs to control the cluster: a
# postgresql-common cluster (pg_virtualenv) through pg_ctlcluster, or the data
# directory through pg_ctl as its owner. It skips, saying why, only what it
# cannot do.
set -uo pipefail
cd "$(dirname "$0")/.."
db=pg_personalize_crash
work=$(mktemp -d)
status=0
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  dropdb --if-exists "$db" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }

# ---------------------------------------------------------------- preconditions
if [ "$(psql -X -At -d postgres -c 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user' 2>/dev/null)" != t ]; then
  echo "crash safety: SKIPPED (needs a superuser connection: test-only triggers on the extension's tables)"
  exit 0
fi
datadir=$(psql -X -At -d postgres -c 'SHOW data_directory')
port=$(psql -X -At -d postgres -c 'SHOW port')
kill_ok=$(psql -X -At -d postgres -c 'SHOW restart_after_crash')

# ---------------------------------------------------------------- how to kill and restart
# SIGKILL a backend: from this shell when the process is the server's (its
# working directory is the data directory), else through the server's own OS
# user (COPY TO PROGRAM), which may signal its backends wherever it runs.
kill_backend() {
  local pid=$1
  if [ -n "$pid" ] && [ "$(readlink -f "/proc/$pid/cwd" 2>/dev/null)" = "$(readlink -f "$datadir" 2>/dev/null)" ]; then
    kill -KILL "$pid"
    echo "shell"
  else
    psql -X -q -d "$db" -c "COPY (SELECT 1) TO PROGRAM 'kill -KILL $pid'" >/dev/null 2>&1
    echo "server"
  fi
}

# How to restart the cluster in immediate mode, found once; empty when impossible.
restart_how=""
restart_why="no pg_lsclusters entry with port $port and data directory $datadir, and the data directory is not reachable from here"
if command -v pg_lsclusters >/dev/null 2>&1; then
  # postgresql-common (pg_virtualenv, Debian's clusters); honours PG_CLUSTER_CONF_ROOT
  cluster=$(pg_lsclusters -h 2>/dev/null | awk -v p="$port" -v d="$datadir" '$3 == p && $6 == d {print $1, $2; exit}')
  [ -n "$cluster" ] && restart_how="pg_ctlcluster --skip-systemctl-redirect -m immediate ${cluster% *} ${cluster#* } restart"
fi
if [ -z "$restart_how" ] && [ -r "$datadir/postmaster.pid" ]; then
  owner=$(stat -c %U "$datadir")
  bindir=$("${PG_CONFIG:-pg_config}" --bindir)
  as_owner=""
  if [ "$(id -un)" != "$owner" ]; then
    if [ "$(id -u)" -eq 0 ]; then as_owner="runuser -u $owner --"; else as_owner=none; fi
  fi
  if [ "$as_owner" = none ]; then
    restart_why="the data directory belongs to $owner, and this shell is neither $owner nor root"
  elif [ ! -x "$bindir/pg_ctl" ]; then
    restart_why="no pg_ctl in $bindir"
  else
    # keep writing the server's log where it goes now
    log=$(readlink -f "/proc/$(head -1 "$datadir/postmaster.pid")/fd/2" 2>/dev/null)
    if [ ! -f "$log" ]; then log="$work/server.log"; chmod 777 "$work"; fi
    restart_how="$as_owner $bindir/pg_ctl -D $datadir -m immediate -w -t 120 -l $log restart"
  fi
fi

wait_ready() {
  for _ in $(seq 1 600); do
    psql -X -At -d "$db" -c 'SELECT 1' >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}
# wait_exit PID SECONDS: wait for a child to end; its status in exit_rc (124: it had to be stopped)
wait_exit() {
  for _ in $(seq 1 $(($2 * 20))); do
    if ! kill -0 "$1" 2>/dev/null; then wait "$1"; exit_rc=$?; return; fi
    sleep 0.05
  done
  kill "$1" 2>/dev/null; wait "$1"; exit_rc=124
}
# wait_for FILE PATTERN SECONDS
wait_for() {
  for _ in $(seq 1 $(($3 * 20))); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# ---------------------------------------------------------------- fixtures
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
q >/dev/null <<'SQL' || { echo "crash safety: FAILED (setup)"; exit 1; }
SET client_min_messages = warning;
CREATE EXTENSION pg_personalize;
CREATE SCHEMA crash;
-- small protected interactions the served models learn from; subject 42 among them
CREATE TABLE crash.clicks AS
SELECT (g % 300)::bigint AS user_id, ((g * 7919) % 97 * (g % 3 + 1) % 120)::bigint AS item_id, (1 + g % 4)::real AS weight
FROM generate_series(1, 6000) g;
SELECT count(personalize.set_consent(u, 'personalization', true, 'signup')) FROM generate_series(0, 299) u;
SELECT count(personalize.set_consent(u, 'personalization', false, 'preference center')) FROM generate_series(0, 299, 7) u;
SELECT personalize.protect('crash.clicks', 'user_id', 'personalization');
INSERT INTO personalize.prediction_log (model, subject_id, score, prediction)
SELECT 'crash_als', u, u / 300.0, u % 2 = 0 FROM generate_series(0, 299) u;
SELECT personalize.train('crash_pop', 'popularity', 'crash.clicks');
SELECT personalize.train('crash_knn', 'itemknn', 'crash.clicks', '{"neighbors": 20}');
SELECT personalize.train('crash_als', 'als', 'crash.clicks', '{"factors": 8, "iterations": 3, "seed": 1}');
SELECT personalize.train('crash_als', 'als', 'crash.clicks', '{"factors": 8, "iterations": 2, "seed": 2, "activate": false}');
SELECT * FROM personalize.forget(7);      -- one erasure in the audit already
-- a large source for trainings that take seconds: 20,000 users, 20 items each
CREATE TABLE crash.events AS
SELECT g AS n, (g % 20000)::bigint AS user_id, ((g::bigint * 7919) % 3000)::bigint AS item_id, 1::real AS weight
FROM generate_series(1, 400000) g;

-- pauses: where crash.pause names the point, say so and sleep
CREATE FUNCTION crash.probe(point text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('crash.pause', true) = point THEN
    RAISE NOTICE 'crash probe: paused at %', point;
    PERFORM pg_sleep(600);
  END IF;
  RETURN true;
END $$;
CREATE FUNCTION crash.probe_at(n integer, at integer) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  RETURN n <> at OR crash.probe('source');
END $$;
CREATE FUNCTION crash.probe_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM crash.probe(TG_TABLE_NAME || ' ' || TG_OP);
  RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
-- a version becoming active (after the old one was deactivated in the same transaction)
CREATE TRIGGER crash_probe BEFORE INSERT OR UPDATE ON personalize.models
  FOR EACH ROW WHEN (NEW.active) EXECUTE FUNCTION crash.probe_row();
-- forget's last step (after protected rows, the prediction log and the models)
CREATE TRIGGER crash_probe BEFORE DELETE ON personalize.consents
  FOR EACH ROW EXECUTE FUNCTION crash.probe_row();

-- what must survive every crash
CREATE VIEW crash.registry AS
SELECT name, version, active, stale, owner::text AS owner, trained_at, revised_at, algorithm, rows, users, items,
       md5(personalize.model_send(personalize.model_export(name, version))) AS model_md5
FROM personalize.models;
CREATE VIEW crash.served AS
SELECT 'recommend' AS fn, m.name, u.user_id AS arg, r.item_id, r.score, r.rank, r.reason
FROM (VALUES ('crash_pop'), ('crash_knn'), ('crash_als')) m(name), generate_series(0, 60, 3) u(user_id),  -- 42 included
     LATERAL personalize.recommend(m.name, u.user_id, 10) r
UNION ALL
SELECT 'similar_items', m.name, i.item_id, r.item_id, r.score, r.rank, NULL
FROM (VALUES ('crash_knn'), ('crash_als')) m(name), generate_series(0, 30, 5) i(item_id),
     LATERAL personalize.similar_items(m.name, i.item_id, 5) r;
CREATE VIEW crash.kept AS
SELECT 'consents' AS tbl, md5(c::text) AS row FROM personalize.consents c
UNION ALL SELECT 'clicks', md5(c::text) FROM crash.clicks c
UNION ALL SELECT 'prediction_log', md5(p::text) FROM personalize.prediction_log p
UNION ALL SELECT 'erasures', md5(e::text) FROM personalize.erasures e
UNION ALL SELECT 'protected_tables', md5(t::text) FROM personalize.protected_tables t;
CREATE TABLE crash.registry_before AS SELECT * FROM crash.registry;
CREATE TABLE crash.served_before AS SELECT * FROM crash.served;
CREATE TABLE crash.kept_before AS SELECT * FROM crash.kept;

-- raises unless the state is what it was
CREATE FUNCTION crash.verify() RETURNS text LANGUAGE plpgsql AS $$
DECLARE n bigint; bad text;
BEGIN
  SELECT count(*) INTO n FROM ((TABLE crash.registry EXCEPT TABLE crash.registry_before)
                               UNION ALL (TABLE crash.registry_before EXCEPT TABLE crash.registry)) d;
  IF n > 0 THEN
    SELECT string_agg(DISTINCT format('%s v%s', name, version), ', ') INTO bad
    FROM ((TABLE crash.registry EXCEPT TABLE crash.registry_before) UNION (TABLE crash.registry_before EXCEPT TABLE crash.registry)) d;
    RAISE EXCEPTION 'the registry changed (partial or lost version?): %', bad;
  END IF;
  SELECT string_agg(name, ', ') INTO bad FROM (
    SELECT name FROM personalize.models GROUP BY name HAVING count(*) FILTER (WHERE active) <> 1) d;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'names without exactly one active version: %', bad;
  END IF;
  SELECT count(*) INTO n FROM personalize.models m
  WHERE personalize.model_info(personalize.model_export(m.name, m.version)) IS NULL;
  IF n > 0 THEN
    RAISE EXCEPTION '% stored models are unreadable', n;
  END IF;
  SELECT count(*) INTO n FROM crash.served_before b FULL JOIN crash.served a USING (fn, name, arg, rank)
  WHERE a.item_id IS DISTINCT FROM b.item_id OR a.reason IS DISTINCT FROM b.reason
     OR a.score IS NULL OR b.score IS NULL OR abs(a.score - b.score) > 1e-6 * greatest(1, abs(b.score));
  IF n > 0 THEN
    RAISE EXCEPTION 'serving differs in % rows', n;
  END IF;
  SELECT string_agg(DISTINCT tbl, ', ') INTO bad FROM (
    (TABLE crash.kept EXCEPT ALL TABLE crash.kept_before) UNION ALL (TABLE crash.kept_before EXCEPT ALL TABLE crash.kept)) d;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'rows changed in: %', bad;
  END IF;
  RETURN format('%s versions, %s served rows, %s kept rows as before',
                (SELECT count(*) FROM crash.registry_before), (SELECT count(*) FROM crash.served_before),
                (SELECT count(*) FROM crash.kept_before));
END $$;
SQL
echo "crash safety: fixtures $(q -c 'SELECT crash.verify()')"

# ---------------------------------------------------------------- scenarios
# scenario NAME kill|restart MARKER SQL...: run SQL in a victim session until
# its stderr shows MARKER, crash it, recover, verify.
scenario() {
  local name=$1 how=$2 marker=$3; shift 3
  local victim_out="$work/victim.$name" watcher_out="$work/watcher.$name" args=() s
  for s in "$@"; do args+=(-c "$s"); done
  if [ "$how" = kill ] && [ "$kill_ok" != on ]; then
    echo "crash safety: $name: SKIPPED (restart_after_crash is off: a killed backend would stop the server)"; return
  fi
  if [ "$how" = restart ] && [ -z "$restart_how" ]; then
    echo "crash safety: $name: SKIPPED (cannot restart the server: $restart_why)"; return
  fi
  PGAPPNAME=crash_victim psql -X -d "$db" "${args[@]}" >"$victim_out" 2>&1 &
  local victim=$!
  PGAPPNAME=crash_watcher psql -X -d "$db" -c 'SELECT pg_sleep(600)' >"$watcher_out" 2>&1 &
  local watcher=$!
  pids=("$victim" "$watcher")
  if ! wait_for "$victim_out" "$marker" 120; then
    echo "crash safety: $name: FAILED (the victim never reached \"$marker\")"; cat "$victim_out"; status=1
    kill "$victim" "$watcher" 2>/dev/null; wait "$victim" "$watcher" 2>/dev/null; return
  fi
  local pid started via
  pid=$(q -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'crash_victim'")
  for _ in $(seq 1 100); do
    [ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'crash_watcher'")" = 1 ] && break
    sleep 0.05
  done
  started=$(q -c 'SELECT pg_postmaster_start_time()')
  # the victim's uncommitted rows go to disk and WAL: recovery must find them aborted
  q -c CHECKPOINT
  if [ "$how" = kill ]; then
    via="SIGKILL of backend $pid from the $(kill_backend "$pid")"
  else
    via="immediate restart"
    $restart_how >"$work/restart.$name" 2>&1 || { echo "crash safety: $name: FAILED ($restart_how)"; cat "$work/restart.$name"; status=1; }
  fi
  local victim_rc watcher_rc
  wait_exit "$victim" 120; victim_rc=$exit_rc
  wait_exit "$watcher" 30; watcher_rc=$exit_rc
  pids=()
  if ! wait_ready; then
    echo "crash safety: $name: FAILED (the server did not come back)"; status=1; return
  fi
  local problem=""
  if [ "$victim_rc" -eq 0 ]; then
    problem="the victim finished normally"
  elif [ "$victim_rc" -eq 124 ] || [ "$watcher_rc" -eq 124 ]; then
    problem="a session outlived the crash"
  elif [ "$how" = kill ] && ! grep -q "crash of another server process" "$watcher_out"; then
    problem="another session was not ended by a crash restart: $(tr '\n' ' ' <"$watcher_out")"
  elif [ "$how" = restart ] && [ "$(q -c 'SELECT pg_postmaster_start_time()')" = "$started" ]; then
    problem="the postmaster did not restart"
  fi
  local verdict
  if [ -n "$problem" ]; then
    echo "crash safety: $name: FAILED ($problem)"; cat "$victim_out"; status=1
  elif verdict=$(q -c 'SELECT crash.verify()' 2>&1); then
    echo "crash safety: $name: ok ($via; $verdict)"
  else
    echo "crash safety: $name: FAILED after $via: $verdict"; status=1
  fi
}

big_als="{\"factors\": 128, \"iterations\": 20}"
scenario train-reading kill "crash probe: paused at source" "SET crash.pause = 'source'" \
  "SELECT personalize.train('crash_als', 'als', 'SELECT user_id, item_id, weight FROM crash.events WHERE crash.probe_at(n, 200000)', '$big_als')"
scenario train-solving kill "als iteration 2 of 20" "SET client_min_messages = debug1" \
  "SELECT personalize.train('crash_als', 'als', 'crash.events', '$big_als')"
scenario train-activating kill "crash probe: paused at models INSERT" "SET crash.pause = 'models INSERT'" \
  "SELECT personalize.train('crash_pop', 'popularity', 'crash.events')"
scenario activate kill "crash probe: paused at models UPDATE" "SET crash.pause = 'models UPDATE'" \
  "SELECT personalize.activate('crash_als', 2)"
scenario forget kill "crash probe: paused at consents DELETE" "SET crash.pause = 'consents DELETE'" \
  "SELECT * FROM personalize.forget(42)"
scenario train-immediate-restart restart "als iteration 2 of 20" "SET client_min_messages = debug1" \
  "SELECT personalize.train('crash_als', 'als', 'crash.events', '$big_als')"

# ---------------------------------------------------------------- after the crashes, the same work completes
if after=$(q 2>&1 <<'SQL'
SET client_min_messages = warning;
SELECT personalize.train('crash_als', 'als', 'crash.events', '{"factors": 8, "iterations": 2}') = 3 AS next_version;
SELECT personalize.activate('crash_als', 2);
SELECT removed > 0 FROM personalize.forget(42) WHERE object = 'models';
SELECT count(*) = 0 FROM personalize.consents WHERE subject_id = 42;
SELECT count(*) = 0 FROM (SELECT name FROM personalize.models GROUP BY name HAVING count(*) FILTER (WHERE active) <> 1) d;
SQL
) && [ "$(echo "$after" | tr -d '\n')" = tttt ]; then
  echo "crash safety: afterwards train (version 3), activate and forget complete"
else
  echo "crash safety: FAILED afterwards: $after"; status=1
fi
exit $status
