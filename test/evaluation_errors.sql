-- Bad input to the evaluation functions: SQLSTATEs.
BEGIN;
SET search_path = public, personalize;
SELECT plan(20);

CREATE TABLE r (user_id bigint, item_id bigint, rank int);
INSERT INTO r VALUES (1, 10, 1), (1, 11, 2);
CREATE TABLE t (user_id bigint, item_id bigint);
INSERT INTO t VALUES (1, 10);

SELECT throws_ok($$SELECT * FROM ranking_metrics('r', 't', 0)$$, '22023', 'k must be at least 1, not 0', 'k = 0');
SELECT throws_ok($$SELECT * FROM ranking_metrics('r', 't', -3)$$, '22023', NULL, 'k < 0');
SELECT throws_ok($$SELECT * FROM ranking_metrics('r', 't', 20000)$$, '54000', NULL, 'k too large');
SELECT throws_ok($$SELECT * FROM ranking_metrics(NULL, 't', 5)$$, '22004', NULL, 'NULL recommendations');
SELECT throws_ok($$SELECT * FROM ranking_metrics('r', 't', NULL)$$, '22004', NULL, 'NULL k');
SELECT throws_ok($$SELECT * FROM ranking_metrics('missing', 't', 5)$$, '42P01', NULL, 'unknown relation');
SELECT throws_ok($$SELECT * FROM ranking_metrics('SELECT user_id, item_id FROM r', 't', 5)$$, '42703', NULL, 'missing rank column');
SELECT throws_ok($$SELECT * FROM ranking_metrics('SELECT user_id, item_id, 0 AS rank FROM r', 't', 5)$$, '22023', NULL, 'rank 0');
SELECT throws_ok($$SELECT * FROM ranking_metrics('SELECT user_id, item_id, 1 AS rank FROM r', 't', 5)$$, '23505', NULL, 'duplicate rank');
SELECT throws_ok($$SELECT * FROM ranking_metrics('SELECT user_id, 10 AS item_id, rank FROM r', 't', 5)$$, '23505', NULL, 'duplicate item');
SELECT throws_ok($$SELECT * FROM ranking_metrics('SELECT NULL::bigint AS user_id, item_id, rank FROM r', 't', 5)$$, '22004', NULL, 'NULL user');
SELECT throws_ok($$SELECT * FROM ranking_metrics_by_user('r', 't', 0)$$, '22023', NULL, 'by user: k = 0');
SELECT throws_ok($$SELECT classification_metrics(true, 'Infinity'::float8)$$, '22023', NULL, 'infinite score');
SELECT throws_ok($$SELECT classification_metrics(true, 0.5, 'NaN'::float8)$$, '22023', NULL, 'NaN threshold');
SELECT throws_ok($$SELECT classification_metrics(true, 0.5, 0.5, 0, 'uniform')$$, '22023', NULL, 'zero bins');
SELECT throws_ok($$SELECT classification_metrics(true, 0.5, 0.5, 10, 'equal')$$, '22023', NULL, 'unknown strategy');
SELECT throws_ok($$SELECT * FROM reliability_bins((SELECT score_sample(true, 2.0)))$$, '22023', NULL, 'scores outside [0,1]');
SELECT throws_ok($$SELECT * FROM reliability_bins('\x00'::bytea)$$, '22P03', NULL, 'not a sample');
SELECT throws_ok($$SELECT * FROM split_by_user_time('missing')$$, '42P01', NULL, 'split: unknown relation');
SELECT throws_ok($$SELECT * FROM split_by_user_time('t', 0)$$, '22023', NULL, 'split: test_fraction 0');

SELECT * FROM finish();
ROLLBACK;
