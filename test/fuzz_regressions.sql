-- Inputs the fuzzer (test/fuzz/fuzz.py) found, kept as tests. Aggregate states
-- are bytea or double precision[] values that any caller can hand to the state
-- functions; crafted ones used to crash the server (a negative count copied
-- with memcpy, a count lower than the filled slots overflowing the result), loop
-- forever (a full hash table, a doubling capacity that never reaches a huge
-- count) or fail with an internal error. Each must be a clear error now, and
-- the valid value it was made from must still work.
BEGIN;
SET search_path = personalize, public;
SET client_min_messages = warning;
SELECT plan(18);

-- little-endian integers, to overwrite fields of a state
CREATE FUNCTION pg_temp.i8(x bigint) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$SELECT string_agg(substring(int8send(x) FROM i FOR 1), ''::bytea ORDER BY i DESC) FROM generate_series(1, 8) i$$;
CREATE FUNCTION pg_temp.i4(x int) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$SELECT string_agg(substring(int4send(x) FROM i FOR 1), ''::bytea ORDER BY i DESC) FROM generate_series(1, 4) i$$;
CREATE AGGREGATE pg_temp.classification_merge(bytea) (
  SFUNC = personalize.classification_combine, STYPE = bytea, FINALFUNC = personalize.classification_final,
  FINALFUNC_MODIFY = READ_WRITE);

-- A score sample of 4 scores: magic, threshold, bins, strategy, positives (bytes 21-28),
-- negatives (29-36), then the scores.
CREATE TEMP TABLE sample AS
  SELECT score_sample(label, score) AS s FROM (VALUES (true, 0.9), (true, 0.6), (false, 0.3), (false, 0.7)) v(label, score);
SELECT is((SELECT sum(n) FROM reliability_bins((SELECT s FROM sample), 2)), 4::numeric, 'the valid sample works');
SELECT throws_ok($$SELECT * FROM reliability_bins((SELECT overlay(s PLACING pg_temp.i8(-1) || pg_temp.i8(5) FROM 21 FOR 16) FROM sample))$$,
                 '22P03', 'invalid classification sample', 'a negative count whose sum with the other fits the size');
SELECT throws_ok($$SELECT pg_temp.classification_merge(s) FROM (SELECT overlay(s PLACING pg_temp.i8(4611686018427387904) || pg_temp.i8(-4611686018427387904) FROM 21 FOR 16) AS s FROM sample) x$$,
                 '22P03', 'invalid classification sample', 'counts of 2^62 and -2^62 (the capacity doubled forever)');
SELECT throws_ok($$SELECT classification_final(overlay(s PLACING '\x000000000000f87f'::bytea FROM 37 FOR 8)) FROM sample$$,
                 '22P03', 'invalid classification sample', 'a NaN score');
SELECT throws_ok($$SELECT classification_final(overlay(s PLACING pg_temp.i4(0) FROM 13 FOR 4)) FROM sample$$,
                 '22P03', 'invalid classification sample', 'zero bins');

-- A popularity_fit state: magic, slots (bytes 5-12), count (13-20), rows, null rows, then
-- (item, weight) slots with weight -1 for empty ones.
CREATE AGGREGATE pg_temp.popularity_state(bigint, bigint, real, jsonb) (
  SFUNC = personalize.popularity_transfn, STYPE = bytea);
CREATE TEMP TABLE pop AS
  SELECT pg_temp.popularity_state(u, i, 1, '{}') AS s FROM generate_series(1, 20) u, generate_series(1, 3) i;
SELECT is((SELECT model_info(popularity_final(s)) ->> 'items' FROM pop), '3', 'the valid state works');
SELECT throws_ok($$SELECT popularity_final(overlay(s PLACING pg_temp.i8(1) FROM 13 FOR 8)) FROM pop$$,
                 '22023', 'invalid popularity_fit state', 'a count lower than the filled slots (overflowed the item list)');
SELECT throws_ok($$SELECT popularity_final(overlay(s PLACING pg_temp.i8(1152921504606846976) FROM 5 FOR 8)) FROM pop$$,
                 '22023', 'invalid popularity_fit state', '2^60 slots (the size check wrapped)');
-- 4 slots holding items 1-4, count 0: adding item 5 found no empty slot and probed forever
CREATE AGGREGATE pg_temp.popularity_from_full(bigint, bigint, real, jsonb) (
  SFUNC = personalize.popularity_transfn, STYPE = bytea, FINALFUNC = personalize.popularity_final,
  INITCOND = '\x31504f5004000000000000000000000000000000000000000000000000000000000000000100000000000000000000000000f03f0200000000000000000000000000f03f0300000000000000000000000000f03f0400000000000000000000000000f03f');
SELECT throws_ok($$SELECT pg_temp.popularity_from_full(1, 5, 1, '{}')$$,
                 '22023', 'invalid popularity_fit state', 'a full table whose count says empty');

-- embedding aggregate states: double precision[] {count, sums...}
SELECT is(embedding_avg('{2,4,6}')::text, '[2,3]', 'a valid state works');
SELECT throws_ok($$SELECT embedding_avg('{{1,2},{3,4}}')$$, '22023', 'invalid embedding aggregate state',
                 'a two-dimensional state (was an internal error)');
SELECT throws_ok($$SELECT embedding_sum(array_fill(1::float8, ARRAY[40002]))$$, '54000',
                 'embedding cannot have more than 16000 dimensions', 'a state of 40,001 dimensions (was a wrapped int16 dimension)');
SELECT throws_ok($$SELECT embedding_combine('{1,2}', '{1,NULL}')$$, '22023', 'invalid embedding aggregate state',
                 'a NULL in a state (was an internal error)');
SELECT throws_ok($$SELECT embedding_accum('{1,2}', '[1,2]')$$, '22000', 'different embedding dimensions 1 and 2',
                 'a state of another dimension');

-- A model whose pair count is 2^62: rows x 4 bytes wrapped to 0 in the section checks
-- (an integer division by zero, then sections of 0 bytes taken for 2^62 pairs)
CREATE TEMP TABLE knn AS SELECT model_send(itemknn_fit(u, i, 1, '{"neighbors": 2}')) AS b
  FROM generate_series(1, 5) u, generate_series(1, 4) i;
SELECT is((SELECT model_info(('\x' || encode(b, 'hex'))::model) ->> 'pairs' FROM knn), '20', 'the valid model works');
SELECT throws_ok($$SELECT (SELECT '\x' || encode(overlay(b PLACING pg_temp.i8(4611686018427387904) FROM 33 FOR 8), 'hex')
                           FROM knn)::model$$, 'XX001', NULL, 'a pair count of 2^62');

-- A hybrid model's names section (item features): int32 count, padding, uint32 starts, then
-- NUL-terminated names. A start far beyond the section, followed by a smaller one, was
-- read before the order check failed (a segfault).
CREATE FUNCTION pg_temp.le4(b bytea, o int) RETURNS bigint LANGUAGE sql IMMUTABLE AS
$$SELECT sum(get_byte(b, o + k)::bigint << (8 * k)) FROM generate_series(0, 3) k$$;
CREATE TEMP TABLE hyb_rows AS SELECT (g % 12)::bigint AS user_id, (g % 9)::bigint AS item_id, 1::real AS weight FROM generate_series(1, 200) g;
CREATE TEMP TABLE hyb_feats AS SELECT DISTINCT item_id, 'genre:' || (item_id % 3) AS feature FROM hyb_rows;
SELECT train('fuzz_hybrid', 'hybrid', 'hyb_rows', '{"factors": 4, "iterations": 2, "item_features": "hyb_feats"}') \g /dev/null
CREATE TEMP TABLE hyb AS
SELECT b, (SELECT pg_temp.le4(b, 72 + 24 * i + 8)::int FROM generate_series(0, pg_temp.le4(b, 12)::int - 1) i
           WHERE pg_temp.le4(b, 72 + 24 * i) = 200) AS names_at
FROM (SELECT model_send(model_export('fuzz_hybrid', 1)) AS b) s;
SELECT is((SELECT model_info(('\x' || encode(b, 'hex'))::model) ->> 'item_features' FROM hyb), '3', 'the valid hybrid model works');
SELECT throws_ok($$SELECT (SELECT '\x' || encode(overlay(b PLACING pg_temp.i4(1000000000) FROM names_at + 13 FOR 4), 'hex')
                           FROM hyb)::model$$, 'XX001', 'invalid personalize.model value: names', 'a name starting far beyond its section');

SELECT * FROM finish();
ROLLBACK;
