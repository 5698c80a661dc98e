-- Citus suite, propensity: logistic regression and uplift trained from a distributed table
-- (passes pushed down to the shards as partial aggregates of logistic_pass_flat) give the
-- coefficients and standard errors of training on a local copy of the same rows; consent
-- holds on the shards for an analyst; EXPLAIN shows the partial aggregation in the tasks.
SET client_min_messages = warning;
SELECT plan(21);

-- (temporary functions stay on the coordinator: Citus warns about that)
SET client_min_messages = error;
-- the largest relative difference of two models' coefficients and standard errors (a term
-- missing on one side: infinity)
CREATE FUNCTION pg_temp.fit_diff(m1 text, m2 text) RETURNS float8 LANGUAGE sql AS $$
	SELECT max(CASE WHEN a.term IS NULL OR b.term IS NULL THEN 'Infinity'::float8
	                ELSE greatest(abs(a.coefficient - b.coefficient) / greatest(abs(b.coefficient), 1e-12),
	                              abs(a.std_error - b.std_error) / b.std_error) END)
	FROM personalize.coefficients(m1) a
	FULL JOIN personalize.coefficients(m2) b ON a.arm IS NOT DISTINCT FROM b.arm AND a.term = b.term
$$;
CREATE FUNCTION pg_temp.counts(m text) RETURNS jsonb LANGUAGE sql AS $$
	SELECT (personalize.model_info(personalize.model_export(m, 1)) -> 'classifier') - 'log_likelihood'
$$;
CREATE FUNCTION pg_temp.pass_state(query text) RETURNS float8[] LANGUAGE plpgsql AS $$
DECLARE st float8[];
BEGIN
	EXECUTE query INTO st;
	RETURN st;
END $$;
CREATE FUNCTION pg_temp.explain(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	line text;
	plan text := '';
BEGIN
	FOR line IN EXECUTE 'EXPLAIN (VERBOSE) ' || query LOOP
		plan := plan || line || E'\n';
	END LOOP;
	RETURN plan;
END $$;
SET client_min_messages = warning;

-- 1500 rows of 300 subjects: numbers, a boolean, an integer, a text level, an array, a weight, a treatment
CREATE TABLE public.prop_local AS
SELECT g AS row_id, (1 + g % 300)::bigint AS user_id, sin(g)::float8 AS a, (g % 7)::int AS b, g % 3 = 0 AS member,
       (ARRAY['x', 'y', 'z', 'w'])[1 + (g * 7) % 4] AS seg, ARRAY[cos(g), (g % 5)::float8] AS arr,
       (1 + g % 4)::numeric AS w, g % 2 = 1 AS treated,
       sin(g * 1.3) + (g % 7) / 7.0 + cos(g * 0.7) + CASE WHEN g % 2 = 1 THEN 0.4 ELSE 0 END > 0.3 AS bought
FROM generate_series(1, 1500) g;
CREATE TABLE public.prop_dist (LIKE public.prop_local);
SELECT create_distributed_table('public.prop_dist', 'user_id', shard_count => 8);
INSERT INTO public.prop_dist SELECT * FROM public.prop_local;

SELECT lives_ok($$SELECT personalize.train_classifier('p_dist', 'public.prop_dist', 'bought', '{a,b,member,seg,arr}',
                                                     '{"standardize": true, "weight": "w"}')$$,
	'train_classifier from a distributed table');
SELECT personalize.train_classifier('p_local', 'public.prop_local', 'bought', '{a,b,member,seg,arr}', '{"standardize": true, "weight": "w"}');
SELECT cmp_ok(pg_temp.fit_diff('p_dist', 'p_local'), '<', 1e-9::float8,
	'the coefficients and standard errors of the local rows (numbers, boolean, array, text levels, weights)');
SELECT is(pg_temp.counts('p_dist'), pg_temp.counts('p_local'), 'the same rows, positives, columns and iterations');

-- levels of other types (their output function's text), and an L2 penalty
SELECT personalize.train_classifier('c_dist', 'public.prop_dist', 'bought', '{a,b,member}', '{"categorical": ["b", "member"], "l2": 0.5}');
SELECT personalize.train_classifier('c_local', 'public.prop_local', 'bought', '{a,b,member}', '{"categorical": ["b", "member"], "l2": 0.5}');
SELECT cmp_ok(pg_temp.fit_diff('c_dist', 'c_local'), '<', 1e-9::float8, 'integer and boolean levels (one GROUP BY per feature on Citus)');
SELECT is((SELECT count(*) FROM personalize.coefficients('c_dist')), 9::bigint, 'intercept, a, 6 levels of b and 1 of member');

-- a query over the distributed table, with NULLs left out
SELECT personalize.train_classifier('q_dist', $$SELECT bought, a, CASE WHEN row_id % 50 = 0 THEN NULL ELSE arr END AS arr, seg
                                               FROM public.prop_dist WHERE b < 6$$, 'bought', '{a,arr,seg}', '{"skip_nulls": true}');
SELECT personalize.train_classifier('q_local', $$SELECT bought, a, CASE WHEN row_id % 50 = 0 THEN NULL ELSE arr END AS arr, seg
                                                FROM public.prop_local WHERE b < 6$$, 'bought', '{a,arr,seg}', '{"skip_nulls": true}');
SELECT cmp_ok(pg_temp.fit_diff('q_dist', 'q_local'), '<', 1e-9::float8, 'a query over the distributed table');
SELECT is(pg_temp.counts('q_dist') -> 'null_rows', (SELECT to_jsonb(count(*)) FROM public.prop_local WHERE b < 6 AND row_id % 50 = 0),
	'rows with a NULL array counted and left out');

-- scoring: predictions() reads the distributed table as a source; predict() inside a query on it
-- would run on the workers, which have no registry
SELECT cmp_ok((SELECT max(abs(d.probability - l.probability)) FROM personalize.predictions('p_dist', 'public.prop_dist', 'row_id') d
               JOIN personalize.predictions('p_local', 'public.prop_local', 'row_id') l USING (subject_id)), '<', 1e-12::float8,
	'predictions() over the distributed table: the local model''s probabilities');
SELECT throws_ok($$SELECT count(*) FROM public.prop_dist s WHERE personalize.predict('p_dist', s.a, s.b, s.member, s.seg, s.arr) > 0.5$$,
	'42704', NULL, 'predict() in a query on the shards: the model is not on the workers');

-- a view over it
CREATE VIEW public.prop_view AS SELECT * FROM public.prop_dist WHERE b > 0;
SELECT personalize.train_classifier('v_dist', 'public.prop_view', 'bought', '{a,member,seg}');
SELECT personalize.train_classifier('v_local', 'SELECT * FROM public.prop_local WHERE b > 0', 'bought', '{a,member,seg}');
SELECT cmp_ok(pg_temp.fit_diff('v_dist', 'v_local'), '<', 1e-9::float8, 'a view over the distributed table');

-- a reference table (the pass routed to one node)
CREATE TABLE public.prop_reference (LIKE public.prop_local);
SELECT create_reference_table('public.prop_reference');
INSERT INTO public.prop_reference SELECT * FROM public.prop_local;
SELECT personalize.train_classifier('r_ref', 'public.prop_reference', 'bought', '{a,member,seg}');
SELECT personalize.train_classifier('r_local', 'public.prop_local', 'bought', '{a,member,seg}');
SELECT cmp_ok(pg_temp.fit_diff('r_ref', 'r_local'), '<', 1e-9::float8, 'a reference table');

-- uplift: two fits, one per arm
SELECT lives_ok($$SELECT personalize.train_uplift('u_dist', 'public.prop_dist', 'bought', 'treated', '{a,seg}')$$,
	'train_uplift from a distributed table');
SELECT personalize.train_uplift('u_local', 'public.prop_local', 'bought', 'treated', '{a,seg}');
SELECT cmp_ok(pg_temp.fit_diff('u_dist', 'u_local'), '<', 1e-9::float8, 'both arms'' coefficients and standard errors');
SELECT is((SELECT count(DISTINCT arm) FROM personalize.coefficients('u_dist')), 2::bigint, 'two arms');

-- the pass runs in the shard tasks as a partial aggregate, combined on the coordinator
SELECT personalize.logistic_spec(personalize.model_export('p_dist', 1)) AS spec \gset
\set pass 'SELECT personalize.logistic_pass_flat(%L::bytea, (s.bought)::int4::float8, (s.w)::float8, ARRAY[s.a, s.b, (s.member)::int4]::float8[] || s.arr, ARRAY[s.seg]) FROM public.%s AS s'
SELECT matches(pg_temp.explain(format(:'pass', :'spec', 'prop_dist')),
	'coord_combine_agg.*Task Count: 8.*Query: SELECT pg_catalog\.worker_partial_agg\(''personalize\.logistic_pass_flat\(.*Aggregate',
	'EXPLAIN (VERBOSE): worker_partial_agg of logistic_pass_flat in the shard tasks, coord_combine_agg on the coordinator');
CREATE TABLE public.pass_states AS
SELECT pg_temp.pass_state(format(:'pass', :'spec', 'prop_dist')) AS dist, pg_temp.pass_state(format(:'pass', :'spec', 'prop_local')) AS local;
-- the state: a header, β, the gradient and the Hessian (p = its first element), then a buffer of rows already
-- added; differences relative, or absolute below 1 (the gradient at the estimate is rounding noise)
SELECT cmp_ok((SELECT max(abs(d - l) / greatest(abs(l), 1.0)) FROM public.pass_states, unnest(dist, local) WITH ORDINALITY u(d, l, i)
               WHERE i <= 11 + 2 * local[1] + local[1] * local[1] AND i <> 11),
	'<', 1e-12::float8, 'the shards'' partial states combine to the local pass (rows, log-likelihood, gradient, Hessian)');

-- consent: an analyst trains from exactly the consenting subjects' rows
CREATE TABLE public.prop_protected (LIKE public.prop_local);
SELECT create_distributed_table('public.prop_protected', 'user_id', shard_count => 8);
INSERT INTO public.prop_protected SELECT * FROM public.prop_local;
SELECT personalize.protect('public.prop_protected', 'user_id', 'personalization', 'pz_admin');
GRANT SELECT ON public.prop_protected TO pz_analyst;
CREATE TABLE public.prop_visible AS SELECT * FROM public.prop_local WHERE personalize.has_consent(user_id, 'personalization');
SELECT cmp_ok((SELECT count(*) FROM public.prop_visible), '<', 1500::bigint, 'some subjects do not consent');
SET ROLE pz_analyst;
SELECT lives_ok($$SELECT personalize.train_classifier('p_analyst', 'public.prop_protected', 'bought', '{a,b,member,seg,arr}',
                                                     '{"standardize": true, "weight": "w"}')$$,
	'the analyst trains from the protected distributed table');
RESET ROLE;
SELECT personalize.train_classifier('p_visible', 'public.prop_visible', 'bought', '{a,b,member,seg,arr}', '{"standardize": true, "weight": "w"}');
SELECT is((pg_temp.counts('p_analyst') ->> 'rows')::bigint, (SELECT count(*) FROM public.prop_visible),
	'the model learned from the consenting subjects'' rows only');
SELECT cmp_ok(pg_temp.fit_diff('p_analyst', 'p_visible'), '<', 1e-9::float8, 'the model of those rows');
-- a withdrawal hides the subject's rows from the next training
SELECT personalize.set_consent((SELECT min(user_id) FROM public.prop_visible), 'personalization', false);
SET ROLE pz_analyst;
SELECT personalize.train_classifier('p_analyst', 'public.prop_protected', 'bought', '{a,b,member,seg,arr}', '{"standardize": true, "weight": "w"}');
RESET ROLE;
SELECT is((personalize.model_info(personalize.model_export('p_analyst', 2)) -> 'classifier' ->> 'rows')::bigint,
          (SELECT count(*) FROM public.prop_visible WHERE user_id <> (SELECT min(user_id) FROM public.prop_visible)),
	'after a withdrawal the next training leaves the subject''s rows out');

SELECT personalize.unprotect('public.prop_protected');
DROP VIEW public.prop_view;
DROP TABLE public.prop_reference, public.prop_local, public.prop_dist, public.prop_protected, public.prop_visible, public.pass_states;
SELECT count(personalize.drop_model(name)) FROM (SELECT DISTINCT name FROM personalize.models) m;
SELECT * FROM finish();
