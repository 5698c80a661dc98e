-- check_interactions: every count equals an independent SQL count over the same rows,
-- with and without parallel workers; thresholds, severities, skipped checks, options.
BEGIN;
SET search_path = public, personalize;
SET client_min_messages = warning;
SELECT plan(36);

CREATE TABLE qc (user_id bigint, item_id bigint, weight double precision, occurred_at timestamptz);
SELECT setseed(0.3);
-- 6000 clean rows over the 30 days before 2026-06-01, one window (day) with four times the rows
INSERT INTO qc
SELECT floor(random() * 300)::bigint, floor(random() * 80)::bigint, 1 + floor(random() * 3),
       timestamptz '2026-06-01 00:00+00' - random() * interval '30 days'
FROM generate_series(1, 6000);
INSERT INTO qc
SELECT floor(random() * 300)::bigint, floor(random() * 80)::bigint, 1, timestamptz '2026-06-01 00:00+00' - random() * interval '1 day'
FROM generate_series(1, 600);
-- defects
INSERT INTO qc SELECT NULL, 1, 1, timestamptz '2026-05-20' FROM generate_series(1, 7);
INSERT INTO qc SELECT 1, NULL, 1, timestamptz '2026-05-20' FROM generate_series(1, 5);
INSERT INTO qc SELECT 2, 2, NULL, timestamptz '2026-05-20' FROM generate_series(1, 3);
INSERT INTO qc SELECT 3, 3, -2, timestamptz '2026-05-20' + g * interval '1 s' FROM generate_series(1, 4) g;
INSERT INTO qc VALUES (4, 4, 'NaN', '2026-05-21'), (4, 5, 'Infinity', '2026-05-21'), (4, 6, '-Infinity', '2026-05-21'),
                      (4, 7, 1e300, '2026-05-21');
INSERT INTO qc SELECT 5, g, 1, NULL FROM generate_series(1, 6) g;
INSERT INTO qc VALUES (5, 99, 1, '-infinity'), (5, 98, 1, 'infinity');
INSERT INTO qc SELECT 6, g, 1, timestamptz '2026-06-01 01:00+00' FROM generate_series(1, 9) g;
-- 11 exact copies, and one row three times more
INSERT INTO qc SELECT * FROM (SELECT * FROM qc WHERE user_id IS NOT NULL AND item_id IS NOT NULL AND occurred_at IS NOT NULL LIMIT 11) d;
INSERT INTO qc SELECT d.* FROM (SELECT * FROM qc WHERE user_id = 3 LIMIT 1) d, generate_series(1, 3);

CREATE TEMP TABLE truth AS
SELECT count(*)::float8 AS n,
       count(*) FILTER (WHERE user_id IS NULL) AS null_user_ids,
       count(*) FILTER (WHERE item_id IS NULL) AS null_item_ids,
       count(*) FILTER (WHERE weight IS NULL) AS null_weights,
       count(*) FILTER (WHERE weight < 0 AND weight <> '-Infinity') AS negative_weights,
       count(*) FILTER (WHERE weight = 'NaN' OR abs(weight) > 3.4028234663852886e38) AS non_finite_weights,
       count(*) FILTER (WHERE occurred_at IS NULL OR occurred_at = '-infinity') AS null_timestamps,
       count(*) FILTER (WHERE occurred_at > timestamptz '2026-06-01 00:05+00') AS future_timestamps,
       count(*) FILTER (WHERE user_id IS NOT NULL AND item_id IS NOT NULL AND occurred_at IS NOT NULL)
         - count(DISTINCT (user_id, item_id, occurred_at)) FILTER (WHERE user_id IS NOT NULL AND item_id IS NOT NULL AND occurred_at IS NOT NULL)
         AS duplicate_rows,
       extract(epoch FROM timestamptz '2026-06-01 00:00+00'
               - max(occurred_at) FILTER (WHERE occurred_at <= timestamptz '2026-06-01 00:05+00' AND occurred_at > '-infinity')) AS age,
       count(*) FILTER (WHERE occurred_at > timestamptz '2026-06-01 00:00+00' - interval '1 day' AND occurred_at <= '2026-06-01 00:00+00')::float8
         / (count(*) FILTER (WHERE occurred_at > timestamptz '2026-06-01 00:00+00' - interval '8 days'
                             AND occurred_at <= timestamptz '2026-06-01 00:00+00' - interval '1 day') / 7.0) AS volume
FROM qc;

CREATE TEMP TABLE serial AS SELECT * FROM check_interactions('qc', '{"as_of": "2026-06-01 00:00+00"}');
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
CREATE TEMP TABLE plan_text (line text);
DO $$ DECLARE l text; BEGIN
	FOR l IN EXPLAIN SELECT interaction_profile(user_id, item_id, weight, occurred_at, '{"as_of_us": 0}') FROM qc LOOP
		INSERT INTO plan_text VALUES (l);
	END LOOP;
END $$;
SELECT ok(EXISTS (SELECT FROM plan_text WHERE line ~ 'Partial Aggregate'), 'the profile runs as a parallel aggregate here');
CREATE TEMP TABLE parallel AS SELECT * FROM check_interactions('qc', '{"as_of": "2026-06-01 00:00+00"}');
SET LOCAL max_parallel_workers_per_gather = 0;

SELECT results_eq('SELECT * FROM parallel ORDER BY check_name', 'SELECT * FROM serial ORDER BY check_name',
                  'parallel workers give the same rows as one process');
SELECT is((SELECT array_agg(check_name ORDER BY ordinality) FROM check_interactions('qc', '{"as_of": "2026-06-01"}') WITH ORDINALITY),
          ARRAY['rows', 'null_user_ids', 'null_item_ids', 'null_weights', 'negative_weights', 'non_finite_weights',
                'null_timestamps', 'future_timestamps', 'duplicate_rows', 'freshness', 'volume', 'unseen_users', 'unseen_items'],
          'one row per check, in a fixed order');

CREATE FUNCTION pg_temp.observed(c text) RETURNS float8 LANGUAGE sql AS $$ SELECT observed FROM serial WHERE check_name = c $$;
SELECT is(pg_temp.observed('rows'), (SELECT n FROM truth), 'rows');
SELECT is(pg_temp.observed('null_user_ids'), (SELECT null_user_ids / n FROM truth), 'NULL user ids: share of rows');
SELECT is(pg_temp.observed('null_item_ids'), (SELECT null_item_ids / n FROM truth), 'NULL item ids');
SELECT is(pg_temp.observed('null_weights'), (SELECT null_weights / n FROM truth), 'NULL weights');
SELECT is(pg_temp.observed('negative_weights'), (SELECT negative_weights / n FROM truth), 'negative weights');
SELECT is(pg_temp.observed('non_finite_weights'), (SELECT non_finite_weights / n FROM truth), 'NaN, infinite and beyond-real weights');
SELECT is(pg_temp.observed('null_timestamps'), (SELECT null_timestamps / n FROM truth), 'NULL and -infinity timestamps');
SELECT is(pg_temp.observed('future_timestamps'), (SELECT future_timestamps / n FROM truth), 'timestamps after as_of + 5 minutes');
SELECT is(pg_temp.observed('duplicate_rows'), (SELECT duplicate_rows / n FROM truth), 'rows repeating an earlier (user, item, time)');
SELECT is((SELECT duplicate_rows FROM truth), 16::bigint, 'the fixture repeats 16 rows (14 copies, and the three NULL-weight rows share a key)');
SELECT is(pg_temp.observed('freshness'), (SELECT age::float8 FROM truth), 'age of the newest usable timestamp');
SELECT ok(abs(pg_temp.observed('volume') - (SELECT volume FROM truth)) < 1e-12, 'last day against the mean of the 7 days before');

SELECT is((SELECT array_agg(check_name ORDER BY check_name) FROM serial WHERE NOT passed),
          ARRAY['duplicate_rows', 'future_timestamps', 'negative_weights', 'non_finite_weights', 'null_item_ids',
                'null_timestamps', 'null_user_ids', 'null_weights', 'volume'],
          'the defects fail their checks');
SELECT is((SELECT array_agg(check_name ORDER BY check_name) FROM serial WHERE passed),
          ARRAY['freshness', 'rows'], 'rows and freshness pass');
SELECT is((SELECT array_agg(DISTINCT severity) FROM serial WHERE check_name IN ('duplicate_rows', 'null_timestamps', 'volume')),
          ARRAY['warning'], 'duplicates, NULL timestamps and volume are warnings by default');
SELECT is((SELECT detail FROM serial WHERE check_name = 'unseen_users'), 'no model given', 'unseen users need a model');

-- thresholds, severities, skip
SELECT is((SELECT passed FROM check_interactions('qc', '{"as_of": "2026-06-01", "thresholds": {"duplicate_rows": 0.01}}')
           WHERE check_name = 'duplicate_rows'), true, 'a threshold lets a small share pass');
SELECT is((SELECT severity FROM check_interactions('qc', '{"as_of": "2026-06-01", "severity": {"freshness": "warning"}}')
           WHERE check_name = 'freshness'), 'warning', 'severity can be changed per check');
SELECT is((SELECT passed FROM check_interactions('qc', '{"as_of": "2026-06-05", "thresholds": {"freshness": "3 days"}}')
           WHERE check_name = 'freshness'), false, 'freshness fails when the newest row is older than the limit');
SELECT is((SELECT row(passed, detail) FROM check_interactions('qc', '{"as_of": "2026-06-01", "skip": ["duplicate_rows"]}')
           WHERE check_name = 'duplicate_rows'), row(NULL::boolean, 'skipped'::text), 'a skipped check is not evaluated');
SELECT is((SELECT round(observed::numeric, 6) FROM check_interactions('qc', '{"as_of": "2026-06-01", "window": "2 days", "trailing_windows": 3}')
           WHERE check_name = 'volume'),
          (SELECT round((count(*) FILTER (WHERE occurred_at > '2026-05-30' AND occurred_at <= '2026-06-01')::numeric
                  / (count(*) FILTER (WHERE occurred_at > '2026-05-24' AND occurred_at <= '2026-05-30') / 3.0)), 6) FROM qc),
          'window and trailing_windows set the volume comparison');

-- ids the active model does not know
SELECT lives_ok($$SELECT train('qc_model', 'popularity', 'SELECT user_id, item_id, 1 AS weight FROM qc WHERE item_id < 40')$$, 'a popularity model of the first 40 items');
SELECT lives_ok($$SELECT train('qc_als', 'als', 'SELECT user_id, item_id, 1 AS weight FROM qc WHERE user_id < 100', '{"factors": 2, "iterations": 1}')$$, 'an ALS model of the first 100 users');
SELECT is((SELECT observed FROM check_interactions('qc', '{"as_of": "2026-06-01", "model": "qc_model"}') WHERE check_name = 'unseen_items'),
          (SELECT count(DISTINCT item_id) FILTER (WHERE item_id >= 40)::float8 / count(DISTINCT item_id) FROM qc),
          'unseen items: share of distinct items');
SELECT is((SELECT detail FROM check_interactions('qc', '{"as_of": "2026-06-01", "model": "qc_model"}') WHERE check_name = 'unseen_users'),
          'model "qc_model" keeps no users', 'a popularity model keeps no users');
SELECT is((SELECT observed FROM check_interactions('qc', '{"as_of": "2026-06-01", "model": "qc_als"}') WHERE check_name = 'unseen_users'),
          (SELECT count(DISTINCT user_id) FILTER (WHERE user_id >= 100)::float8 / count(DISTINCT user_id) FROM qc),
          'unseen users: share of distinct users');
SELECT is((SELECT detail FROM check_interactions('qc', '{"model": "nope"}') WHERE check_name = 'unseen_items'),
          'model "nope" has no active version', 'a model without an active version is named');

-- sources without weight or time, empty sources
SELECT is((SELECT array_agg(check_name ORDER BY check_name) FROM check_interactions('SELECT user_id, item_id FROM qc') WHERE passed IS NULL),
          ARRAY['duplicate_rows', 'freshness', 'future_timestamps', 'null_timestamps', 'unseen_items', 'unseen_users', 'volume'],
          'without occurred_at the time checks are not evaluated');
SELECT is((SELECT observed FROM check_interactions('SELECT user_id, item_id FROM qc') WHERE check_name = 'negative_weights'),
          0::float8, 'without a weight column every weight is 1');
SELECT is((SELECT row(passed, observed) FROM check_interactions('SELECT * FROM qc WHERE false') WHERE check_name = 'rows'),
          row(false, 0::float8), 'an empty source fails the rows check');
SELECT is((SELECT count(*) FROM check_interactions('SELECT * FROM qc WHERE false') WHERE passed IS NOT NULL), 1::bigint,
          'and nothing else is evaluated');

-- row-level security: an analyst's checks and drift see only the consenting users' rows
CREATE TABLE qc_protected AS SELECT * FROM qc WHERE user_id IS NOT NULL;
SELECT count(set_consent(u, 'personalization', u % 3 <> 0)) FROM generate_series(0, 299) u;
SELECT protect('qc_protected', 'user_id', 'personalization');
CREATE ROLE qc_analyst;
SELECT grant_analyst('qc_analyst');
GRANT SELECT ON qc_protected TO qc_analyst;
SELECT count(*)::float8 AS consented_rows FROM qc WHERE user_id IS NOT NULL AND user_id % 3 <> 0 \gset
SELECT (count(*) FILTER (WHERE user_id >= 100))::float8 / count(*) AS consented_unknown
FROM qc WHERE user_id % 3 <> 0 AND occurred_at > '2026-05-29' AND occurred_at <= '2026-06-01' \gset
SET LOCAL ROLE qc_analyst;
SELECT is((SELECT observed FROM check_interactions('qc_protected', '{"as_of": "2026-06-01"}') WHERE check_name = 'rows'),
          :consented_rows::float8, 'check_interactions counts only the rows the caller may read');
SELECT is((SELECT value FROM model_drift('qc_als', 'qc_protected', '3 days', '{"as_of": "2026-06-01"}') WHERE metric = 'unknown_users'),
          :consented_unknown::float8, 'and so does model_drift');
RESET ROLE;

ROLLBACK;
