-- complain if script is sourced in psql rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION pg_personalize" to load this file. \quit

-- ==== src/embedding.sql ====
-- embedding: float4 vectors with typmod dimensions, pgvector-compatible text form.

CREATE TYPE personalize.embedding;

CREATE FUNCTION personalize.embedding_in(cstring, oid, integer) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_out(personalize.embedding) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_typmod_in(cstring[]) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_typmod_out(integer) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_recv(internal, oid, integer) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_send(personalize.embedding) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Stored uncompressed: float data does not compress, and trying costs time on every write.
CREATE TYPE personalize.embedding (
	INPUT = personalize.embedding_in,
	OUTPUT = personalize.embedding_out,
	TYPMOD_IN = personalize.embedding_typmod_in,
	TYPMOD_OUT = personalize.embedding_typmod_out,
	RECEIVE = personalize.embedding_recv,
	SEND = personalize.embedding_send,
	STORAGE = external
);

COMMENT ON TYPE personalize.embedding IS 'float4 vector with up to 16000 dimensions, text form [1,2,3]';

-- casts

CREATE FUNCTION personalize.embedding(personalize.embedding, integer, boolean) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME', 'embedding_typmod_cast' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.array_to_embedding(integer[], integer, boolean) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME', 'array_to_embedding' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.array_to_embedding(real[], integer, boolean) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME', 'array_to_embedding' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.array_to_embedding(double precision[], integer, boolean) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME', 'array_to_embedding' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.array_to_embedding(numeric[], integer, boolean) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME', 'array_to_embedding' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_to_float4(personalize.embedding, integer, boolean) RETURNS real[]
	AS 'MODULE_PATHNAME', 'embedding_to_float4' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_to_float8(personalize.embedding, integer, boolean) RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'embedding_to_float8' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_to_int4(personalize.embedding, integer, boolean) RETURNS integer[]
	AS 'MODULE_PATHNAME', 'embedding_to_int4' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_to_numeric(personalize.embedding, integer, boolean) RETURNS numeric[]
	AS 'MODULE_PATHNAME', 'embedding_to_numeric' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE CAST (personalize.embedding AS personalize.embedding)
	WITH FUNCTION personalize.embedding(personalize.embedding, integer, boolean) AS IMPLICIT;
CREATE CAST (integer[] AS personalize.embedding)
	WITH FUNCTION personalize.array_to_embedding(integer[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (real[] AS personalize.embedding)
	WITH FUNCTION personalize.array_to_embedding(real[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (double precision[] AS personalize.embedding)
	WITH FUNCTION personalize.array_to_embedding(double precision[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (numeric[] AS personalize.embedding)
	WITH FUNCTION personalize.array_to_embedding(numeric[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (personalize.embedding AS real[])
	WITH FUNCTION personalize.embedding_to_float4(personalize.embedding, integer, boolean) AS IMPLICIT;
CREATE CAST (personalize.embedding AS double precision[])
	WITH FUNCTION personalize.embedding_to_float8(personalize.embedding, integer, boolean);
CREATE CAST (personalize.embedding AS integer[])
	WITH FUNCTION personalize.embedding_to_int4(personalize.embedding, integer, boolean);
CREATE CAST (personalize.embedding AS numeric[])
	WITH FUNCTION personalize.embedding_to_numeric(personalize.embedding, integer, boolean);

-- distances and norms

CREATE FUNCTION personalize.l2_distance(personalize.embedding, personalize.embedding) RETURNS double precision
	AS 'MODULE_PATHNAME', 'embedding_l2_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.inner_product(personalize.embedding, personalize.embedding) RETURNS double precision
	AS 'MODULE_PATHNAME', 'embedding_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.negative_inner_product(personalize.embedding, personalize.embedding) RETURNS double precision
	AS 'MODULE_PATHNAME', 'embedding_negative_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.cosine_distance(personalize.embedding, personalize.embedding) RETURNS double precision
	AS 'MODULE_PATHNAME', 'embedding_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.dims(personalize.embedding) RETURNS integer
	AS 'MODULE_PATHNAME', 'embedding_dims' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.norm(personalize.embedding) RETURNS double precision
	AS 'MODULE_PATHNAME', 'embedding_norm' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
-- NORMALIZE is an SQL keyword bound to pg_catalog.normalize(text): call this one
-- qualified, personalize.normalize(e), or by its other name l2_normalize(e).
CREATE FUNCTION personalize.normalize(personalize.embedding) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME', 'embedding_normalize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.l2_normalize(personalize.embedding) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME', 'embedding_normalize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR personalize.<-> (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding,
	FUNCTION = personalize.l2_distance, COMMUTATOR = OPERATOR(personalize.<->)
);
CREATE OPERATOR personalize.<#> (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding,
	FUNCTION = personalize.negative_inner_product, COMMUTATOR = OPERATOR(personalize.<#>)
);
CREATE OPERATOR personalize.<=> (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding,
	FUNCTION = personalize.cosine_distance, COMMUTATOR = OPERATOR(personalize.<=>)
);

-- element-wise arithmetic

CREATE FUNCTION personalize.embedding_add(personalize.embedding, personalize.embedding) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_sub(personalize.embedding, personalize.embedding) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_mul(personalize.embedding, personalize.embedding) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR personalize.+ (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding,
	FUNCTION = personalize.embedding_add, COMMUTATOR = OPERATOR(personalize.+)
);
CREATE OPERATOR personalize.- (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding,
	FUNCTION = personalize.embedding_sub
);
CREATE OPERATOR personalize.* (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding,
	FUNCTION = personalize.embedding_mul, COMMUTATOR = OPERATOR(personalize.*)
);

-- ordering, equality and hashing (DISTINCT, GROUP BY, UNIQUE, hash joins)

CREATE FUNCTION personalize.embedding_lt(personalize.embedding, personalize.embedding) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_le(personalize.embedding, personalize.embedding) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_eq(personalize.embedding, personalize.embedding) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_ne(personalize.embedding, personalize.embedding) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_ge(personalize.embedding, personalize.embedding) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_gt(personalize.embedding, personalize.embedding) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_cmp(personalize.embedding, personalize.embedding) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_hash(personalize.embedding) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR personalize.< (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding, PROCEDURE = personalize.embedding_lt,
	COMMUTATOR = OPERATOR(personalize.>), NEGATOR = OPERATOR(personalize.>=),
	RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR personalize.<= (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding, PROCEDURE = personalize.embedding_le,
	COMMUTATOR = OPERATOR(personalize.>=), NEGATOR = OPERATOR(personalize.>),
	RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR personalize.= (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding, PROCEDURE = personalize.embedding_eq,
	COMMUTATOR = OPERATOR(personalize.=), NEGATOR = OPERATOR(personalize.<>),
	RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES
);
CREATE OPERATOR personalize.<> (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding, PROCEDURE = personalize.embedding_ne,
	COMMUTATOR = OPERATOR(personalize.<>), NEGATOR = OPERATOR(personalize.=),
	RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR personalize.>= (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding, PROCEDURE = personalize.embedding_ge,
	COMMUTATOR = OPERATOR(personalize.<=), NEGATOR = OPERATOR(personalize.<),
	RESTRICT = scalargesel, JOIN = scalargejoinsel
);
CREATE OPERATOR personalize.> (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding, PROCEDURE = personalize.embedding_gt,
	COMMUTATOR = OPERATOR(personalize.<), NEGATOR = OPERATOR(personalize.<=),
	RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);

CREATE OPERATOR CLASS personalize.embedding_ops
	DEFAULT FOR TYPE personalize.embedding USING btree AS
	OPERATOR 1 personalize.<,
	OPERATOR 2 personalize.<=,
	OPERATOR 3 personalize.=,
	OPERATOR 4 personalize.>=,
	OPERATOR 5 personalize.>,
	FUNCTION 1 personalize.embedding_cmp(personalize.embedding, personalize.embedding);

CREATE OPERATOR CLASS personalize.embedding_hash_ops
	DEFAULT FOR TYPE personalize.embedding USING hash AS
	OPERATOR 1 personalize.=,
	FUNCTION 1 personalize.embedding_hash(personalize.embedding);

-- sum and avg; the float8[] state {count, sums...} is a concrete type, so partial
-- aggregation works in parallel query and on Citus workers.

CREATE FUNCTION personalize.embedding_accum(double precision[], personalize.embedding) RETURNS double precision[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_combine(double precision[], double precision[]) RETURNS double precision[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_avg(double precision[]) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_sum(double precision[]) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE AGGREGATE personalize.avg(personalize.embedding) (
	SFUNC = personalize.embedding_accum,
	STYPE = double precision[],
	FINALFUNC = personalize.embedding_avg,
	COMBINEFUNC = personalize.embedding_combine,
	PARALLEL = SAFE
);
CREATE AGGREGATE personalize.sum(personalize.embedding) (
	SFUNC = personalize.embedding_accum,
	STYPE = double precision[],
	FINALFUNC = personalize.embedding_sum,
	COMBINEFUNC = personalize.embedding_combine,
	PARALLEL = SAFE
);

-- ==== src/sqlsource.sql ====
-- sqlsource: arguments that name a table or view, or hold a query, as the caller's SQL.
--
-- Functions that take such text (ranking_metrics, train, fairness_by_group, segment_effects,
-- ...) run it as the caller, so privileges and row-level security apply. Those written in
-- plpgsql do not pin search_path, so that names in the text resolve as the caller would
-- resolve them; their own references are schema-qualified instead.

CREATE FUNCTION personalize.source_sql(source text, what text DEFAULT NULL) RETURNS text
	AS 'MODULE_PATHNAME', 'source_sql' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION personalize.source_sql(text, text) IS
	'a table or view name (resolved now: 42P01 if missing) or a query, as SQL that can follow FROM';

CREATE FUNCTION personalize.source_columns(source text) RETURNS text[]
	AS 'MODULE_PATHNAME', 'source_columns' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION personalize.source_columns(text) IS 'column names of a table, view or query';

-- ==== src/statistics.sql ====
-- statistics: distribution functions, tests, multiple-testing corrections, power,
-- and the moment aggregates behind the experiment read-outs.

-- distribution functions (IMMUTABLE: pure functions of their arguments)

CREATE FUNCTION personalize.norm_cdf(x double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_norm_cdf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.norm_sf(x double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_norm_sf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.norm_ppf(p double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_norm_ppf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.norm_isf(q double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_norm_isf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.t_cdf(x double precision, df double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_t_cdf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.t_sf(x double precision, df double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_t_sf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.t_ppf(p double precision, df double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_t_ppf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.t_isf(q double precision, df double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_t_isf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.chi2_cdf(x double precision, df double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_chi2_cdf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.chi2_sf(x double precision, df double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_chi2_sf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.chi2_ppf(p double precision, df double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_chi2_ppf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.chi2_isf(q double precision, df double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_chi2_isf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- tests from summary numbers

CREATE FUNCTION personalize.proportions_ztest(count1 double precision, nobs1 double precision,
		count2 double precision, nobs2 double precision,
		OUT statistic double precision, OUT p_value double precision)
	AS 'MODULE_PATHNAME', 'pz_proportions_ztest' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.welch_ttest(mean1 double precision, stddev1 double precision, n1 double precision,
		mean2 double precision, stddev2 double precision, n2 double precision,
		OUT statistic double precision, OUT df double precision, OUT p_value double precision)
	AS 'MODULE_PATHNAME', 'pz_welch_ttest' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.chisq_gof(observed double precision[], expected double precision[] DEFAULT NULL,
		OUT statistic double precision, OUT df double precision, OUT p_value double precision)
	AS 'MODULE_PATHNAME', 'pz_chisq_gof' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION personalize.p_adjust(p double precision[], method text) RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'pz_p_adjust' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION personalize.sample_size(baseline_rate double precision, relative_mde double precision,
		alpha double precision DEFAULT 0.05, power double precision DEFAULT 0.8) RETURNS bigint
	AS 'MODULE_PATHNAME', 'pz_sample_size' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.power(baseline_rate double precision, relative_mde double precision,
		n_per_arm double precision, alpha double precision DEFAULT 0.05) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_power' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- moment aggregates with concrete float8[] states (Citus can push them down)

CREATE FUNCTION personalize.moments_accum(double precision[], double precision) RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'pz_moments_accum' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.moments_combine(double precision[], double precision[]) RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'pz_moments_combine' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.moments_final(double precision[]) RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'pz_moments_final' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE AGGREGATE personalize.moments(double precision) (
	SFUNC = personalize.moments_accum,
	STYPE = double precision[],
	FINALFUNC = personalize.moments_final,
	COMBINEFUNC = personalize.moments_combine,
	INITCOND = '{0,0,0,0,0}',
	PARALLEL = SAFE
);
CREATE FUNCTION personalize.comoments_accum(double precision[], double precision, double precision)
	RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'pz_comoments_accum' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.comoments_combine(double precision[], double precision[]) RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'pz_comoments_combine' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.comoments_final(double precision[]) RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'pz_comoments_final' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE AGGREGATE personalize.comoments(y double precision, x double precision) (
	SFUNC = personalize.comoments_accum,
	STYPE = double precision[],
	FINALFUNC = personalize.comoments_final,
	COMBINEFUNC = personalize.comoments_combine,
	INITCOND = '{0,0,0,0,0,0,0,0,0}',
	PARALLEL = SAFE
);
CREATE FUNCTION personalize.moments_pad(state double precision[], n double precision) RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'pz_moments_pad' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION personalize.ab_test(control double precision[], treatment double precision[],
		proportion boolean, confidence double precision DEFAULT 0.95,
		OUT lift_abs double precision, OUT lift_abs_low double precision, OUT lift_abs_high double precision,
		OUT lift_rel double precision, OUT lift_rel_low double precision, OUT lift_rel_high double precision,
		OUT statistic double precision, OUT df double precision, OUT p_value double precision)
	AS 'MODULE_PATHNAME', 'pz_ab_test' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- ==== src/evaluation.sql ====
-- evaluation: time-aware splits, ranking metrics at K, beyond-accuracy metrics.
-- Every function reads the caller's relations as the caller (SECURITY INVOKER),
-- so row-level security decides what is evaluated. Functions that run the
-- caller's SQL do not pin search_path (the caller's names must resolve as the
-- caller sees them); their bodies qualify every function and operator instead.

-- Per-user temporal split: each user's last ceil(n * test_fraction) interactions by time
-- (ties broken by item_id, then weight) go to test; users with fewer than
-- min_interactions stay wholly in train.
CREATE FUNCTION personalize.split_by_user_time(source text, test_fraction double precision DEFAULT 0.2,
                                               min_interactions integer DEFAULT 5)
RETURNS TABLE (user_id bigint, item_id bigint, weight real, occurred_at timestamptz, part text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
AS $$
DECLARE
	from_item text := personalize.source_sql(source) OPERATOR(pg_catalog.||) ' AS s';
	weight_expr text := CASE WHEN 'weight' OPERATOR(pg_catalog.=) ANY (personalize.source_columns(source))
	                         THEN 's.weight::pg_catalog.float4' ELSE '1::pg_catalog.float4' END;
BEGIN
	IF test_fraction IS NULL OR test_fraction OPERATOR(pg_catalog.<=) 0 OR test_fraction OPERATOR(pg_catalog.>=) 1
	   OR test_fraction OPERATOR(pg_catalog.=) 'NaN'::pg_catalog.float8 THEN
		RAISE EXCEPTION 'test_fraction must be between 0 and 1 (exclusive), not %', test_fraction
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF min_interactions IS NULL OR min_interactions OPERATOR(pg_catalog.<) 2 THEN
		RAISE EXCEPTION 'min_interactions must be at least 2, not %', min_interactions
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY EXECUTE pg_catalog.format($q$
		SELECT o.user_id, o.item_id, o.weight, o.occurred_at,
		       CASE WHEN o.total OPERATOR(pg_catalog.>=) $2
		            AND o.position OPERATOR(pg_catalog.>) (o.total OPERATOR(pg_catalog.-) pg_catalog.ceil(o.total OPERATOR(pg_catalog.*) $1)) THEN 'test' ELSE 'train' END
		FROM (SELECT i.*, pg_catalog.row_number() OVER w AS position, pg_catalog.count(*) OVER (PARTITION BY i.user_id) AS total
		      FROM (SELECT s.user_id::pg_catalog.int8 AS user_id, s.item_id::pg_catalog.int8 AS item_id,
		                   %s AS weight, s.occurred_at::pg_catalog.timestamptz AS occurred_at
		            FROM %s) i
		      WINDOW w AS (PARTITION BY i.user_id ORDER BY i.occurred_at, i.item_id, i.weight)) o
		$q$, weight_expr, from_item)
		USING test_fraction, min_interactions;
END $$;

-- Global split: interactions before the cutoff train, the rest test.
CREATE FUNCTION personalize.split_by_time(source text, cutoff timestamptz)
RETURNS TABLE (user_id bigint, item_id bigint, weight real, occurred_at timestamptz, part text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
AS $$
DECLARE
	from_item text := personalize.source_sql(source) OPERATOR(pg_catalog.||) ' AS s';
	weight_expr text := CASE WHEN 'weight' OPERATOR(pg_catalog.=) ANY (personalize.source_columns(source))
	                         THEN 's.weight::pg_catalog.float4' ELSE '1::pg_catalog.float4' END;
BEGIN
	IF cutoff IS NULL OR NOT pg_catalog.isfinite(cutoff) THEN
		RAISE EXCEPTION 'cutoff must be a finite timestamp' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY EXECUTE pg_catalog.format($q$
		SELECT s.user_id::pg_catalog.int8, s.item_id::pg_catalog.int8, %s, s.occurred_at::pg_catalog.timestamptz,
		       CASE WHEN s.occurred_at::pg_catalog.timestamptz OPERATOR(pg_catalog.<) $1 THEN 'train' ELSE 'test' END
		FROM %s$q$, weight_expr, from_item)
		USING cutoff;
END $$;

CREATE FUNCTION personalize.ranking_metrics(
	recommendations text, truth text, k integer, catalog text DEFAULT NULL,
	OUT users bigint, OUT precision_at_k double precision, OUT recall_at_k double precision,
	OUT ndcg_at_k double precision, OUT map_at_k double precision, OUT hit_rate_at_k double precision,
	OUT mrr_at_k double precision, OUT coverage_at_k double precision)
	AS 'MODULE_PATHNAME', 'ranking_metrics' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION personalize.ranking_metrics_by_user(recommendations text, truth text, k integer)
RETURNS TABLE (user_id bigint, relevant integer, hits integer, precision_at_k double precision,
               recall_at_k double precision, ndcg_at_k double precision, average_precision double precision,
               reciprocal_rank double precision)
	AS 'MODULE_PATHNAME', 'ranking_metrics_by_user' LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 10000;

-- Beyond accuracy: novelty and popularity bias from training popularity, and
-- intra-list diversity from item embeddings when given.
CREATE FUNCTION personalize.beyond_accuracy(
	recommendations text, training text, k integer, item_embeddings text DEFAULT NULL,
	OUT users bigint, OUT novelty double precision, OUT popularity_percentile double precision,
	OUT unseen_in_training bigint, OUT intra_list_diversity double precision)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
AS $$
BEGIN
	IF recommendations IS NULL OR training IS NULL OR k IS NULL THEN
		RAISE EXCEPTION 'recommendations, training and k must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF k OPERATOR(pg_catalog.<) 1 THEN
		RAISE EXCEPTION 'k must be at least 1, not %', k USING ERRCODE = 'invalid_parameter_value';
	END IF;
	EXECUTE pg_catalog.format($q$
		WITH rec AS (SELECT r.user_id::pg_catalog.int8 AS user_id, r.item_id::pg_catalog.int8 AS item_id
		             FROM %s WHERE r.rank OPERATOR(pg_catalog.<=) $1),
		     train AS (SELECT DISTINCT t.user_id::pg_catalog.int8 AS user_id, t.item_id::pg_catalog.int8 AS item_id FROM %s),
		     n AS (SELECT pg_catalog.count(DISTINCT user_id)::pg_catalog.float8 AS users FROM train),
		     pop AS (SELECT item_id, pg_catalog.count(*)::pg_catalog.float8 AS interacted,
		                    pg_catalog.percent_rank() OVER (ORDER BY pg_catalog.count(*)) AS percentile
		             FROM train GROUP BY item_id)
		SELECT pg_catalog.count(DISTINCT rec.user_id),
		       pg_catalog.avg(OPERATOR(pg_catalog.-) pg_catalog.ln(pop.interacted OPERATOR(pg_catalog./) n.users)
		                      OPERATOR(pg_catalog./) pg_catalog.ln(2::pg_catalog.float8)),
		       pg_catalog.avg(pop.percentile),
		       pg_catalog.count(*) FILTER (WHERE pop.item_id IS NULL)
		FROM rec CROSS JOIN n LEFT JOIN pop USING (item_id)$q$,
		personalize.source_sql(recommendations) OPERATOR(pg_catalog.||) ' AS r', personalize.source_sql(training) OPERATOR(pg_catalog.||) ' AS t')
		USING k
		INTO users, novelty, popularity_percentile, unseen_in_training;
	IF item_embeddings IS NOT NULL THEN
		EXECUTE pg_catalog.format($q$
			WITH rec AS (SELECT r.user_id::pg_catalog.int8 AS user_id, r.item_id::pg_catalog.int8 AS item_id
			             FROM %s WHERE r.rank OPERATOR(pg_catalog.<=) $1),
			     emb AS (SELECT e.item_id::pg_catalog.int8 AS item_id, e.embedding FROM %s),
			     pairs AS (SELECT a.user_id, pg_catalog.avg(ea.embedding OPERATOR(personalize.<=>) eb.embedding) AS diversity
			               FROM rec a JOIN rec b ON a.user_id OPERATOR(pg_catalog.=) b.user_id AND a.item_id OPERATOR(pg_catalog.<) b.item_id
			               JOIN emb ea ON ea.item_id OPERATOR(pg_catalog.=) a.item_id JOIN emb eb ON eb.item_id OPERATOR(pg_catalog.=) b.item_id
			               GROUP BY a.user_id)
			SELECT pg_catalog.avg(diversity) FROM pairs$q$,
			personalize.source_sql(recommendations) OPERATOR(pg_catalog.||) ' AS r', personalize.source_sql(item_embeddings) OPERATOR(pg_catalog.||) ' AS e')
			USING k
			INTO intra_list_diversity;
	END IF;
	RETURN;
END $$;

-- ==== src/classification.sql ====
-- classification: AUC, log loss, Brier score, calibration (ECE, reliability bins)
-- and threshold metrics for scored predictions, as one parallel-safe aggregate.

CREATE FUNCTION personalize.classification_accum(bytea, boolean, double precision) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION personalize.classification_accum(bytea, boolean, double precision, double precision) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION personalize.classification_accum(bytea, boolean, double precision, double precision, integer, text) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION personalize.classification_combine(bytea, bytea) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE TYPE personalize.classification_report AS (
	n bigint, positives bigint, auc double precision, log_loss double precision,
	brier double precision, ece double precision, accuracy double precision,
	"precision" double precision, recall double precision, f1 double precision);
CREATE FUNCTION personalize.classification_final(bytea) RETURNS personalize.classification_report
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.classification_sample_final(bytea) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- The state is bytea (a concrete type: Citus and parallel query ship partial
-- states); while aggregating it is an expanded object updated in place.
CREATE AGGREGATE personalize.classification_metrics(label boolean, score double precision) (
	SFUNC = personalize.classification_accum, STYPE = bytea,
	COMBINEFUNC = personalize.classification_combine,
	FINALFUNC = personalize.classification_final, FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = SAFE
);
CREATE AGGREGATE personalize.classification_metrics(label boolean, score double precision,
                                                    threshold double precision) (
	SFUNC = personalize.classification_accum, STYPE = bytea,
	COMBINEFUNC = personalize.classification_combine,
	FINALFUNC = personalize.classification_final, FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = SAFE
);
CREATE AGGREGATE personalize.classification_metrics(label boolean, score double precision,
                                                    threshold double precision, bins integer, strategy text) (
	SFUNC = personalize.classification_accum, STYPE = bytea,
	COMBINEFUNC = personalize.classification_combine,
	FINALFUNC = personalize.classification_final, FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = SAFE
);

-- The collected scores themselves, for reliability_bins.
CREATE AGGREGATE personalize.score_sample(label boolean, score double precision) (
	SFUNC = personalize.classification_accum, STYPE = bytea,
	COMBINEFUNC = personalize.classification_combine,
	FINALFUNC = personalize.classification_sample_final,
	PARALLEL = SAFE
);
CREATE FUNCTION personalize.reliability_bins(sample bytea, bins integer DEFAULT 10, strategy text DEFAULT 'uniform')
RETURNS TABLE (bin integer, lower_edge double precision, upper_edge double precision, n bigint,
               mean_score double precision, fraction_positive double precision)
	AS 'MODULE_PATHNAME', 'reliability_bins' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 10;
COMMENT ON FUNCTION personalize.reliability_bins(bytea, integer, text) IS
	'calibration curve of a score_sample: per bin, mean score and fraction of positives';

-- ==== src/model.sql ====
-- model: the personalize.model type, a flat varlena holding a trained
-- recommender (algorithm, options, id maps, float4 matrices).

CREATE TYPE personalize.model;

CREATE FUNCTION personalize.model_in(cstring) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.model_out(personalize.model) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.model_recv(internal) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.model_send(personalize.model) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Stored out of line and uncompressed: factors do not compress, and serving
-- reads the whole value once per backend and version.
CREATE TYPE personalize.model (
	INPUT = personalize.model_in,
	OUTPUT = personalize.model_out,
	RECEIVE = personalize.model_recv,
	SEND = personalize.model_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = external
);

COMMENT ON TYPE personalize.model IS 'trained recommendation model (popularity, item-kNN or ALS)';

CREATE FUNCTION personalize.model_info(personalize.model) RETURNS jsonb
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION personalize.model_info(personalize.model) IS 'algorithm, options and sizes of a model';

CREATE FUNCTION personalize.model_without_user(model personalize.model, user_id bigint) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION personalize.model_without_user(personalize.model, bigint) IS
	'the model without one user (id, seen items, factors); NULL when the model does not know the user';

-- ==== src/interactions.sql ====
-- interactions: transition state of the training aggregates that need every
-- (user, item, weight) row (item-kNN, ALS). Parallel safe through combine,
-- serialize and deserialize.

CREATE FUNCTION personalize.interactions_transfn(internal, bigint, bigint, real, jsonb) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT PARALLEL SAFE;
CREATE FUNCTION personalize.interactions_combine(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT PARALLEL SAFE;
CREATE FUNCTION personalize.interactions_serialize(internal) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.interactions_deserialize(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL SAFE;

-- ==== src/popularity.sql ====
-- popularity: summed weight per item. The state is a bytea (a concrete type,
-- so Citus can push partial aggregation to workers).

CREATE FUNCTION personalize.popularity_transfn(bytea, bigint, bigint, real, jsonb) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT PARALLEL SAFE;
CREATE FUNCTION personalize.popularity_combine(bytea, bytea) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.popularity_final(bytea) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL SAFE;

CREATE AGGREGATE personalize.popularity_fit(user_id bigint, item_id bigint, weight real, options jsonb) (
	SFUNC = personalize.popularity_transfn,
	STYPE = bytea,
	COMBINEFUNC = personalize.popularity_combine,
	FINALFUNC = personalize.popularity_final,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE personalize.popularity_fit(bigint, bigint, real, jsonb) IS 'popularity model: summed weight per item';

-- ==== src/itemknn.sql ====
-- itemknn: item-item cosine neighbours.

CREATE FUNCTION personalize.itemknn_final(internal) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL SAFE;

CREATE AGGREGATE personalize.itemknn_fit(user_id bigint, item_id bigint, weight real, options jsonb) (
	SFUNC = personalize.interactions_transfn,
	STYPE = internal,
	COMBINEFUNC = personalize.interactions_combine,
	SERIALFUNC = personalize.interactions_serialize,
	DESERIALFUNC = personalize.interactions_deserialize,
	FINALFUNC = personalize.itemknn_final,
	FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE personalize.itemknn_fit(bigint, bigint, real, jsonb) IS 'item-kNN model (cosine, top neighbors per item)';

-- ==== src/als.sql ====
-- als: implicit-feedback alternating least squares with a conjugate-gradient solver.

CREATE FUNCTION personalize.als_final(internal) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL SAFE;

CREATE AGGREGATE personalize.als_fit(user_id bigint, item_id bigint, weight real, options jsonb) (
	SFUNC = personalize.interactions_transfn,
	STYPE = internal,
	COMBINEFUNC = personalize.interactions_combine,
	SERIALFUNC = personalize.interactions_serialize,
	DESERIALFUNC = personalize.interactions_deserialize,
	FINALFUNC = personalize.als_final,
	FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE personalize.als_fit(bigint, bigint, real, jsonb) IS 'implicit ALS model (conjugate gradient)';

-- ==== src/serving.sql ====
-- serving: recommendations from the active version of a named model.
-- Each call looks up the active version (one index probe) and reuses the
-- model this backend loaded for it. STABLE: one answer per snapshot.

CREATE FUNCTION personalize.recommend(model_name text, user_id bigint, k integer DEFAULT 10,
	exclude_seen boolean DEFAULT true, candidates bigint[] DEFAULT NULL, exclude bigint[] DEFAULT NULL)
RETURNS TABLE (item_id bigint, score real, rank integer, reason text)
	AS 'MODULE_PATHNAME', 'recommend' LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION personalize.recommend(text, bigint, integer, boolean, bigint[], bigint[]) IS 'top-k items for a user; popular items for an unknown user';

CREATE FUNCTION personalize.recommend_for(model_name text, items bigint[], weights real[] DEFAULT NULL, k integer DEFAULT 10)
RETURNS TABLE (item_id bigint, score real, rank integer, reason text)
	AS 'MODULE_PATHNAME', 'recommend_for' LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION personalize.recommend_for(text, bigint[], real[], integer) IS 'top-k items for a user known only by these interactions (fold-in)';

CREATE FUNCTION personalize.fold_in(model_name text, items bigint[], weights real[])
RETURNS real[]
	AS 'MODULE_PATHNAME', 'fold_in_factors' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION personalize.fold_in(text, bigint[], real[]) IS 'ALS user factors solved from these interactions';

CREATE FUNCTION personalize.recommend_all(model_name text, k integer DEFAULT 10)
RETURNS TABLE (user_id bigint, item_id bigint, score real, rank integer)
	AS 'MODULE_PATHNAME', 'recommend_all' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED ROWS 100000;
COMMENT ON FUNCTION personalize.recommend_all(text, integer) IS 'top-k unseen items for every user of a model';

CREATE FUNCTION personalize.similar_items(model_name text, item_id bigint, k integer DEFAULT 10)
RETURNS TABLE (item_id bigint, score real, rank integer)
	AS 'MODULE_PATHNAME', 'similar_items' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION personalize.similar_items(text, bigint, integer) IS 'the k items most similar to an item';

CREATE FUNCTION personalize.score(model_name text, user_id bigint, item_id bigint)
RETURNS real
	AS 'MODULE_PATHNAME', 'model_score' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION personalize.score(text, bigint, bigint) IS 'model score of one (user, item) pair';

CREATE FUNCTION personalize.user_embeddings(model_name text)
RETURNS TABLE (id bigint, embedding personalize.embedding)
	AS 'MODULE_PATHNAME', 'user_embeddings' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED ROWS 100000;
COMMENT ON FUNCTION personalize.user_embeddings(text) IS 'ALS user factors as embeddings';

CREATE FUNCTION personalize.item_embeddings(model_name text)
RETURNS TABLE (id bigint, embedding personalize.embedding)
	AS 'MODULE_PATHNAME', 'item_embeddings' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED ROWS 100000;
COMMENT ON FUNCTION personalize.item_embeddings(text) IS 'ALS item factors as embeddings';

-- ==== src/registry.sql ====
-- registry: named, versioned models in personalize.models; train, activate, drop.

CREATE TABLE personalize.models (
	name		text NOT NULL,
	version		integer NOT NULL CHECK (version > 0),
	algorithm	text NOT NULL CHECK (algorithm IN ('popularity', 'itemknn', 'als')),
	options		jsonb NOT NULL DEFAULT '{}',
	trained_at	timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	rows		bigint NOT NULL,
	users		bigint,
	items		bigint NOT NULL,
	seconds		double precision NOT NULL,
	active		boolean NOT NULL DEFAULT false,
	-- set by personalize.forget: the stored model no longer knows a subject, but
	-- its item factors still carry their influence until the next training
	stale		boolean NOT NULL DEFAULT false,
	revised_at	timestamptz,	-- when forget last rewrote the stored model
	model		personalize.model NOT NULL,
	PRIMARY KEY (name, version)
);
-- at most one active version per name; serving looks it up by this index
CREATE UNIQUE INDEX models_active_idx ON personalize.models (name) WHERE active;
COMMENT ON TABLE personalize.models IS 'trained model versions; the active one of each name is served';

-- pg_dump keeps users' models (the table belongs to the extension)
SELECT pg_catalog.pg_extension_config_dump('personalize.models', '');

CREATE FUNCTION personalize.train(model_name text, algorithm text, source text, options jsonb DEFAULT '{}')
RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
-- No pinned search_path: the source is the caller's table or query and is
-- resolved with the caller's path. Every name in the body is qualified.
AS $$
DECLARE
	fit text;
	relation text;
	fit_options jsonb;
	make_active boolean;
	started timestamptz;
	trained personalize.model;
	info jsonb;
	new_version integer;
BEGIN
	IF model_name IS NULL OR algorithm IS NULL OR source IS NULL OR options IS NULL THEN
		RAISE EXCEPTION 'model_name, algorithm, source and options must not be NULL' USING ERRCODE = '22004';
	END IF;
	IF model_name = '' THEN
		RAISE EXCEPTION 'model name must not be empty' USING ERRCODE = '22023';
	END IF;
	fit := CASE algorithm WHEN 'popularity' THEN 'popularity_fit'
	                      WHEN 'itemknn' THEN 'itemknn_fit'
	                      WHEN 'als' THEN 'als_fit' END;
	IF fit IS NULL THEN
		RAISE EXCEPTION 'unknown algorithm "%"', algorithm USING ERRCODE = '22023',
			HINT = 'Use popularity, itemknn or als.';
	END IF;
	IF pg_catalog.jsonb_typeof(options) <> 'object' THEN
		RAISE EXCEPTION 'options must be a jsonb object' USING ERRCODE = '22023';
	END IF;
	IF options ? 'activate' AND pg_catalog.jsonb_typeof(options -> 'activate') <> 'boolean' THEN
		RAISE EXCEPTION 'option "activate" must be a boolean' USING ERRCODE = '22023';
	END IF;
	make_active := coalesce((options ->> 'activate')::boolean, true);
	fit_options := options - 'activate';

	-- a query runs as a subquery; anything else must name a table or view
	relation := personalize.source_sql(source);

	-- runs as the caller: privileges and row-level security apply to the source
	started := pg_catalog.clock_timestamp();
	EXECUTE pg_catalog.format('SELECT personalize.%I(s.user_id::bigint, s.item_id::bigint, s.weight::real, $1) FROM %s AS s',
	               fit, relation)
		INTO trained USING fit_options;
	IF trained IS NULL THEN
		RAISE EXCEPTION 'source "%" has no interactions with non-NULL user_id, item_id and weight', source
			USING ERRCODE = '22023';
	END IF;
	info := personalize.model_info(trained);

	-- versions of one name are numbered in commit order
	PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('personalize.models'), pg_catalog.hashtext(model_name));
	SELECT coalesce(pg_catalog.max(m.version), 0) + 1 INTO new_version FROM personalize.models m WHERE m.name = model_name;
	IF make_active THEN
		UPDATE personalize.models m SET active = false WHERE m.name = model_name AND m.active;
	END IF;
	INSERT INTO personalize.models (name, version, algorithm, options, rows, users, items, seconds, active, model)
	VALUES (model_name, new_version, algorithm, options, (info ->> 'rows')::pg_catalog.int8, (info ->> 'users')::pg_catalog.int8,
	        (info ->> 'items')::pg_catalog.int8, pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - started), make_active, trained);
	RETURN new_version;
END
$$;
COMMENT ON FUNCTION personalize.train(text, text, text, jsonb) IS 'train a model over (user_id, item_id, weight) rows and store a new version';

CREATE FUNCTION personalize.activate(model_name text, version integer)
RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(hashtext('personalize.models'), hashtext(model_name));
	IF NOT EXISTS (SELECT FROM personalize.models m WHERE m.name = model_name) THEN
		RAISE EXCEPTION 'model "%" does not exist', model_name USING ERRCODE = '42704';
	END IF;
	IF NOT EXISTS (SELECT FROM personalize.models m WHERE m.name = model_name AND m.version = activate.version) THEN
		RAISE EXCEPTION 'model "%" has no version %', model_name, activate.version USING ERRCODE = '42704';
	END IF;
	UPDATE personalize.models m SET active = false WHERE m.name = model_name AND m.active AND m.version <> activate.version;
	UPDATE personalize.models m SET active = true WHERE m.name = model_name AND m.version = activate.version AND NOT m.active;
END
$$;
COMMENT ON FUNCTION personalize.activate(text, integer) IS 'make a version the one served';

CREATE FUNCTION personalize.drop_model(model_name text)
RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM personalize.models m WHERE m.name = model_name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'model "%" does not exist', model_name USING ERRCODE = '42704';
	END IF;
END
$$;
COMMENT ON FUNCTION personalize.drop_model(text) IS 'delete every version of a model';

-- Erasure in models, called by personalize.forget: every stored version (active
-- or not) that knows the subject is rewritten without them and marked stale, so
-- a refresh retrains it. revised_at changes the serving cache's key, so no
-- backend serves the old value after commit. Runs as the caller: erasing needs
-- UPDATE on personalize.models.
CREATE FUNCTION personalize.forget_in_models(subject_id bigint) RETURNS integer
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	touched integer;
BEGIN
	UPDATE personalize.models m
	SET model = r.model, stale = true, revised_at = pg_catalog.clock_timestamp(), users = m.users - 1
	FROM (SELECT x.name, x.version, personalize.model_without_user(x.model, forget_in_models.subject_id) AS model
	      FROM personalize.models x) r
	WHERE r.model IS NOT NULL AND m.name = r.name AND m.version = r.version;
	GET DIAGNOSTICS touched = ROW_COUNT;
	RETURN touched;
END
$$;

-- ==== src/experiments.sql ====
-- experiments: catalog tables, deterministic assignment, outcomes, read-out views.
-- Formulas and how to read the results: doc/experiments.md.

CREATE TABLE personalize.experiments (
	name text PRIMARY KEY CHECK (name <> ''),
	control text NOT NULL,
	salt text NOT NULL,
	confidence double precision NOT NULL DEFAULT 0.95 CHECK (confidence > 0 AND confidence < 1),
	block_size integer NOT NULL CHECK (block_size > 0),
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE personalize.experiments IS 'A/B experiments: control arm, assignment salt, confidence level of the read-out';

CREATE TABLE personalize.experiment_arms (
	experiment text NOT NULL REFERENCES personalize.experiments (name) ON UPDATE CASCADE ON DELETE CASCADE,
	arm text NOT NULL CHECK (arm <> ''),
	position integer NOT NULL,
	weight double precision NOT NULL CHECK (weight >= 0 AND weight < 'Infinity'),
	block_count integer NOT NULL CHECK (block_count >= 0),
	PRIMARY KEY (experiment, arm),
	UNIQUE (experiment, position)
);
COMMENT ON TABLE personalize.experiment_arms IS 'Arms of each experiment with their weights and slots per randomisation block';

CREATE TABLE personalize.assignments (
	experiment text NOT NULL,
	unit_id bigint NOT NULL,
	arm text NOT NULL,
	stratum text,
	assigned_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (experiment, unit_id),
	FOREIGN KEY (experiment, arm) REFERENCES personalize.experiment_arms (experiment, arm)
		ON UPDATE CASCADE ON DELETE CASCADE
);
COMMENT ON TABLE personalize.assignments IS 'One arm per experiment and unit, recorded once (intention to treat)';

CREATE TABLE personalize.experiment_strata (
	experiment text NOT NULL REFERENCES personalize.experiments (name) ON UPDATE CASCADE ON DELETE CASCADE,
	stratum text NOT NULL,
	next_position bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (experiment, stratum)
);
COMMENT ON TABLE personalize.experiment_strata IS 'Position of the next unit in each stratum (blocked randomisation)';

CREATE TABLE personalize.outcomes (
	experiment text NOT NULL REFERENCES personalize.experiments (name) ON UPDATE CASCADE ON DELETE CASCADE,
	unit_id bigint NOT NULL,
	metric text NOT NULL CHECK (metric <> ''),
	value double precision NOT NULL CHECK (value > '-Infinity' AND value < 'Infinity'),
	recorded_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX outcomes_experiment_metric_unit ON personalize.outcomes (experiment, metric, unit_id);
COMMENT ON TABLE personalize.outcomes IS 'Outcome events; per unit and metric they are summed, and a missing unit counts as 0';

-- pg_dump keeps users' experiments, assignments and outcomes
SELECT pg_catalog.pg_extension_config_dump('personalize.experiments', '');
SELECT pg_catalog.pg_extension_config_dump('personalize.experiment_arms', '');
SELECT pg_catalog.pg_extension_config_dump('personalize.assignments', '');
SELECT pg_catalog.pg_extension_config_dump('personalize.experiment_strata', '');
SELECT pg_catalog.pg_extension_config_dump('personalize.outcomes', '');

-- creating an experiment

CREATE FUNCTION personalize.create_experiment(name text, arms text[], weights double precision[] DEFAULT NULL,
		control text DEFAULT NULL, salt text DEFAULT NULL, confidence double precision DEFAULT 0.95)
	RETURNS personalize.experiments
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n integer;
	w double precision[];
	total double precision;
	b integer;
	counts integer[];
	result personalize.experiments;
BEGIN
	IF name IS NULL OR name = '' THEN
		RAISE EXCEPTION 'experiment name must not be empty' USING ERRCODE = '22023';
	END IF;
	IF arms IS NULL OR cardinality(arms) = 0 THEN
		RAISE EXCEPTION 'experiment "%" needs at least 2 arms, got none', name USING ERRCODE = '22023';
	END IF;
	IF array_ndims(arms) > 1 THEN
		RAISE EXCEPTION 'arms must be a one-dimensional array' USING ERRCODE = '2202E';
	END IF;
	n := cardinality(arms);
	IF n < 2 THEN
		RAISE EXCEPTION 'experiment "%" needs at least 2 arms, got 1', name USING ERRCODE = '22023';
	END IF;
	IF array_position(arms, NULL) IS NOT NULL OR '' = ANY (arms) THEN
		RAISE EXCEPTION 'arm names must not be NULL or empty' USING ERRCODE = '22023';
	END IF;
	IF (SELECT count(DISTINCT a) FROM unnest(arms) a) <> n THEN
		RAISE EXCEPTION 'arm names must be distinct' USING ERRCODE = '22023';
	END IF;
	w := coalesce(weights, array_fill(1::double precision, ARRAY[n]));
	IF array_ndims(w) > 1 OR cardinality(w) <> n THEN
		RAISE EXCEPTION 'arms and weights have different lengths % and %', n, cardinality(w)
			USING ERRCODE = '22023';
	END IF;
	IF EXISTS (SELECT FROM unnest(w) x WHERE x IS NULL OR x < 0 OR x = 'Infinity' OR x = 'NaN') THEN
		RAISE EXCEPTION 'weights must be finite and non-negative, not %', w USING ERRCODE = '22023';
	END IF;
	total := (SELECT sum(x) FROM unnest(w) x);
	IF total <= 0 THEN
		RAISE EXCEPTION 'at least one weight must be positive' USING ERRCODE = '22023';
	END IF;
	control := coalesce(control, arms[1]);
	IF NOT control = ANY (arms) THEN
		RAISE EXCEPTION 'control arm "%" is not one of the arms %', control, arms USING ERRCODE = '22023';
	END IF;
	IF confidence IS NULL OR NOT (confidence > 0 AND confidence < 1) THEN
		RAISE EXCEPTION 'confidence must be between 0 and 1 (exclusive), not %', confidence USING ERRCODE = '22023';
	END IF;
	IF EXISTS (SELECT FROM personalize.experiments e WHERE e.name = create_experiment.name) THEN
		RAISE EXCEPTION 'experiment "%" already exists', name USING ERRCODE = '42710';
	END IF;
	-- block: the smallest size (up to 1000) in which every arm gets a whole number of slots
	SELECT g INTO b FROM generate_series(1, 1000) g
	WHERE (SELECT bool_and(abs(x / total * g - round(x / total * g)) < 1e-9 * g) FROM unnest(w) x)
	ORDER BY g LIMIT 1;
	IF b IS NOT NULL THEN
		counts := ARRAY(SELECT round(x / total * b)::integer FROM unnest(w) WITH ORDINALITY u(x, i) ORDER BY i);
	ELSE
		-- irrational-looking weights: 1000 slots by largest remainder
		b := 1000;
		counts := ARRAY(
			WITH q AS (SELECT i, x / total * 1000 AS exact FROM unnest(w) WITH ORDINALITY u(x, i)),
			r AS (SELECT i, floor(exact)::integer AS base,
			             row_number() OVER (ORDER BY exact - floor(exact) DESC, i) AS rk FROM q)
			SELECT base + CASE WHEN rk <= 1000 - (SELECT sum(base) FROM r) THEN 1 ELSE 0 END
			FROM r ORDER BY i);
	END IF;
	INSERT INTO personalize.experiments (name, control, salt, confidence, block_size)
	VALUES (create_experiment.name, control, coalesce(salt, create_experiment.name), confidence, b)
	RETURNING * INTO result;
	INSERT INTO personalize.experiment_arms (experiment, arm, position, weight, block_count)
	SELECT create_experiment.name, arms[i], i, w[i], counts[i] FROM generate_series(1, n) i;
	RETURN result;
END
$$;

-- assignment

-- uniform number in [0, 1) from the first 52 bits of md5(salt:unit): portable and reproducible
CREATE FUNCTION personalize.unit_hash(salt text, unit_id bigint) RETURNS double precision
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN ('x' OPERATOR(pg_catalog.||) pg_catalog.substr(pg_catalog.md5(salt OPERATOR(pg_catalog.||) ':'
		OPERATOR(pg_catalog.||) unit_id::text), 1, 13))::bit(52)::bigint
		OPERATOR(pg_catalog./) 4503599627370496::double precision;

-- the arm of an unstratified unit: a pure function of salt, unit and weights
CREATE FUNCTION personalize.arm_for(experiment text, unit_id bigint) RETURNS text
	LANGUAGE sql STABLE STRICT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	WITH e AS (SELECT salt FROM personalize.experiments WHERE name = $1),
	a AS (SELECT arm, position, sum(weight) OVER (ORDER BY position) / sum(weight) OVER () AS upto
	      FROM personalize.experiment_arms WHERE experiment = $1)
	SELECT a.arm FROM a, e
	WHERE personalize.unit_hash(e.salt, $2) < a.upto AND a.upto > 0
	ORDER BY a.position LIMIT 1
$$;

CREATE FUNCTION personalize.assign(experiment text, unit_id bigint, stratum text DEFAULT NULL) RETURNS text
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	e personalize.experiments;
	chosen text;
	pos bigint;
	inserted boolean := false;
BEGIN
	IF experiment IS NULL OR unit_id IS NULL THEN
		RAISE EXCEPTION 'experiment and unit_id must not be NULL' USING ERRCODE = '22004';
	END IF;
	SELECT a.arm INTO chosen FROM personalize.assignments a
	WHERE a.experiment = assign.experiment AND a.unit_id = assign.unit_id;
	IF FOUND THEN
		RETURN chosen;
	END IF;
	SELECT * INTO e FROM personalize.experiments x WHERE x.name = assign.experiment;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'experiment "%" does not exist', experiment USING ERRCODE = '42704';
	END IF;
	IF stratum IS NULL THEN
		chosen := personalize.arm_for(experiment, unit_id);
		INSERT INTO personalize.assignments (experiment, unit_id, arm, stratum)
		VALUES (experiment, unit_id, chosen, NULL)
		ON CONFLICT DO NOTHING;
	ELSE
		INSERT INTO personalize.experiment_strata AS s (experiment, stratum)
		VALUES (experiment, stratum) ON CONFLICT DO NOTHING;
		-- the row lock serialises assignment within the stratum
		SELECT s.next_position INTO pos FROM personalize.experiment_strata s
		WHERE s.experiment = assign.experiment AND s.stratum = assign.stratum FOR UPDATE;
		SELECT a.arm INTO chosen FROM personalize.assignments a
		WHERE a.experiment = assign.experiment AND a.unit_id = assign.unit_id;
		IF FOUND THEN
			RETURN chosen;
		END IF;
		-- slot pos % block_size of block pos / block_size, blocks permuted by md5(salt:stratum:block:slot)
		WITH slots AS (
			SELECT ea.arm, row_number() OVER (ORDER BY ea.position, k) AS j
			FROM personalize.experiment_arms ea, generate_series(1, ea.block_count) k
			WHERE ea.experiment = assign.experiment)
		SELECT slots.arm INTO chosen FROM slots
		ORDER BY md5(format('%s:%s:%s:%s', e.salt, stratum, pos / e.block_size, slots.j))
		OFFSET pos % e.block_size LIMIT 1;
		INSERT INTO personalize.assignments (experiment, unit_id, arm, stratum)
		VALUES (experiment, unit_id, chosen, stratum)
		ON CONFLICT DO NOTHING
		RETURNING true INTO inserted;
		IF inserted THEN
			UPDATE personalize.experiment_strata s SET next_position = pos + 1
			WHERE s.experiment = assign.experiment AND s.stratum = assign.stratum;
		END IF;
	END IF;
	-- a concurrent call may have won: its arm is the unit's arm
	SELECT a.arm INTO chosen FROM personalize.assignments a
	WHERE a.experiment = assign.experiment AND a.unit_id = assign.unit_id;
	RETURN chosen;
END
$$;

CREATE FUNCTION personalize.log_outcome(experiment text, unit_id bigint, metric text,
		value double precision DEFAULT 1, recorded_at timestamptz DEFAULT pg_catalog.now())
	RETURNS void
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF experiment IS NULL OR unit_id IS NULL OR metric IS NULL OR value IS NULL OR recorded_at IS NULL THEN
		RAISE EXCEPTION 'experiment, unit_id, metric, value and recorded_at must not be NULL'
			USING ERRCODE = '22004';
	END IF;
	IF NOT EXISTS (SELECT FROM personalize.experiments e WHERE e.name = log_outcome.experiment) THEN
		RAISE EXCEPTION 'experiment "%" does not exist', experiment USING ERRCODE = '42704';
	END IF;
	IF value = 'NaN' OR value = 'Infinity' OR value = '-Infinity' THEN
		RAISE EXCEPTION 'outcome value must be finite, not %', value USING ERRCODE = '22023';
	END IF;
	INSERT INTO personalize.outcomes (experiment, unit_id, metric, value, recorded_at)
	VALUES (experiment, unit_id, metric, value, recorded_at);
END
$$;

-- read-outs

-- unit totals per metric (zeros of assigned units without rows are added by moments_pad)
-- security_invoker: the view reads outcomes as the caller, so row-level security on them holds
CREATE VIEW personalize.experiment_results WITH (security_invoker = true) AS
WITH arm_units AS (
	SELECT a.experiment, a.arm, count(*) AS n
	FROM personalize.assignments a
	GROUP BY a.experiment, a.arm
), observed AS (
	-- unit totals per metric (several rows of a unit are summed) joined to the unit's arm; the join
	-- comes first so that it can run as a parallel hash join
	SELECT u.experiment, u.metric, u.arm, personalize.moments(u.value) AS m
	FROM (SELECT a.experiment, o.metric, a.arm, o.unit_id, sum(o.value) AS value
	      FROM personalize.outcomes o
	      JOIN personalize.assignments a ON a.experiment = o.experiment AND a.unit_id = o.unit_id
	      GROUP BY a.experiment, o.metric, a.arm, o.unit_id) u
	GROUP BY u.experiment, u.metric, u.arm
), per_metric AS (
	-- one row per experiment and metric, the arms' states side by side, so that the aggregation
	-- above is referenced once (and runs in parallel, with the caller's filters pushed down)
	SELECT ob.experiment, ob.metric, array_agg(ob.arm) AS arms,
	       array_agg(ob.m[1]) AS n, array_agg(ob.m[2]) AS s, array_agg(ob.m[3]) AS ss, array_agg(ob.m[4]) AS nb
	FROM observed ob
	GROUP BY ob.experiment, ob.metric
), cells AS (
	SELECT e.name AS experiment, pm.metric, ea.arm, ea.position, ea.arm = e.control AS is_control,
	       e.confidence,
	       personalize.moments_pad(
	           CASE WHEN i.i IS NOT NULL THEN ARRAY[pm.n[i.i], pm.s[i.i], pm.ss[i.i], pm.nb[i.i]] END,
	           coalesce(au.n, 0)) AS m
	FROM personalize.experiments e
	JOIN personalize.experiment_arms ea ON ea.experiment = e.name
	JOIN per_metric pm ON pm.experiment = e.name
	CROSS JOIN LATERAL (SELECT pg_catalog.array_position(pm.arms, ea.arm) AS i) i
	LEFT JOIN arm_units au ON au.experiment = e.name AND au.arm = ea.arm
), kinds AS (
	SELECT c.*,
	       bool_and(c.m[4] = 0) OVER (PARTITION BY c.experiment, c.metric) AS proportion,
	       first_value(c.m) OVER (PARTITION BY c.experiment, c.metric ORDER BY c.is_control DESC) AS control_m
	FROM cells c
), tests AS (
	SELECT k.*, t.*
	FROM kinds k
	LEFT JOIN LATERAL personalize.ab_test(k.control_m, k.m, k.proportion, k.confidence) t ON NOT k.is_control
)
SELECT t.experiment, t.metric, t.arm, t.is_control,
       t.m[1]::bigint AS n,
       CASE WHEN t.m[1] > 0 THEN t.m[2] / t.m[1] END AS mean,
       CASE WHEN t.m[1] > 1 THEN sqrt(t.m[3] / (t.m[1] - 1)) END AS stddev,
       t.lift_abs, t.lift_abs_low, t.lift_abs_high,
       t.lift_rel, t.lift_rel_low, t.lift_rel_high,
       t.p_value,
       (personalize.p_adjust(array_agg(t.p_value) OVER w, 'bonferroni'))[row_number() OVER w] AS p_bonferroni,
       (personalize.p_adjust(array_agg(t.p_value) OVER w, 'bh'))[row_number() OVER w] AS p_bh,
       (personalize.p_adjust(array_agg(t.p_value) OVER w, 'holm'))[row_number() OVER w] AS p_holm,
       CASE WHEN t.proportion THEN 'z' ELSE 'welch' END AS test,
       t.statistic, t.df, t.confidence
FROM tests t
WINDOW w AS (PARTITION BY t.experiment ORDER BY t.metric, t.position
             ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
ORDER BY t.experiment, t.metric, t.position;
COMMENT ON VIEW personalize.experiment_results IS 'Per experiment, metric and arm: n, mean, lifts with intervals, p-values, Bonferroni/BH/Holm';

CREATE VIEW personalize.experiment_health WITH (security_invoker = true) AS
WITH counts AS (
	SELECT a.experiment, a.arm, count(*) AS n, min(a.assigned_at) AS first_at, max(a.assigned_at) AS last_at
	FROM personalize.assignments a
	GROUP BY a.experiment, a.arm
), arms AS (
	SELECT ea.experiment, ea.arm, ea.position, ea.weight, coalesce(c.n, 0) AS n, c.first_at, c.last_at
	FROM personalize.experiment_arms ea
	LEFT JOIN counts c ON c.experiment = ea.experiment AND c.arm = ea.arm
), per AS (
	SELECT a.experiment,
	       array_agg(a.arm ORDER BY a.position) AS arms,
	       array_agg(a.n ORDER BY a.position) AS units,
	       sum(a.n) AS total_units,
	       min(a.first_at) AS first_assigned_at, max(a.last_at) AS last_assigned_at,
	       bool_or(a.weight = 0 AND a.n > 0) AS unit_in_closed_arm,
	       array_agg(a.n::double precision ORDER BY a.position) FILTER (WHERE a.weight > 0) AS obs,
	       array_agg(a.weight ORDER BY a.position) FILTER (WHERE a.weight > 0) AS expw,
	       array_agg(a.weight ORDER BY a.position) AS weights
	FROM arms a
	GROUP BY a.experiment
)
SELECT p.experiment, p.arms, p.units, p.total_units,
       ARRAY(SELECT x / (SELECT sum(y) FROM unnest(p.weights) y) FROM unnest(p.weights) WITH ORDINALITY u(x, i) ORDER BY i)
           AS expected_shares,
       CASE WHEN p.total_units > 0 THEN
           ARRAY(SELECT x::double precision / p.total_units FROM unnest(p.units) WITH ORDINALITY u(x, i) ORDER BY i)
       END AS observed_shares,
       s.statistic AS srm_chi2,
       s.p_value AS srm_p_value,
       s.p_value < 0.001 AS srm_flag,
       p.first_assigned_at, p.last_assigned_at
FROM per p
LEFT JOIN LATERAL (
	SELECT g.statistic, g.p_value
	FROM personalize.chisq_gof(p.obs, p.expw) g
	WHERE p.total_units > 0 AND cardinality(p.obs) >= 2
) g ON true
LEFT JOIN LATERAL (
	-- a unit in an arm of weight 0 is a mismatch whatever the other counts
	SELECT CASE WHEN p.unit_in_closed_arm THEN 'Infinity'::double precision ELSE g.statistic END AS statistic,
	       CASE WHEN p.unit_in_closed_arm THEN 0::double precision ELSE g.p_value END AS p_value
) s ON true
ORDER BY p.experiment;
COMMENT ON VIEW personalize.experiment_health IS 'Per experiment: units per arm, expected and observed shares, sample ratio mismatch test';

CREATE FUNCTION personalize.experiment_metric_check(experiment text, metric text) RETURNS personalize.experiments
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	e personalize.experiments;
BEGIN
	IF experiment IS NULL OR metric IS NULL THEN
		RAISE EXCEPTION 'experiment and metric must not be NULL' USING ERRCODE = '22004';
	END IF;
	SELECT * INTO e FROM personalize.experiments x WHERE x.name = experiment_metric_check.experiment;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'experiment "%" does not exist', experiment USING ERRCODE = '42704';
	END IF;
	IF NOT EXISTS (SELECT FROM personalize.outcomes o
	               WHERE o.experiment = experiment_metric_check.experiment AND o.metric = experiment_metric_check.metric) THEN
		RAISE EXCEPTION 'metric "%" has no outcomes in experiment "%"', metric, experiment USING ERRCODE = '42704';
	END IF;
	RETURN e;
END
$$;

CREATE FUNCTION personalize.segment_effects(experiment text, metric text, segment_sql text,
		confidence double precision DEFAULT NULL)
	RETURNS TABLE (segment text, arm text, is_control boolean, n bigint, mean double precision,
		stddev double precision, lift_abs double precision, lift_abs_low double precision,
		lift_abs_high double precision, lift_rel double precision, lift_rel_low double precision,
		lift_rel_high double precision, p_value double precision, p_bh double precision, test text)
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
AS $$
DECLARE
	e personalize.experiments := personalize.experiment_metric_check(experiment, metric);
	src text := personalize.source_sql(segment_sql, 'segment');
	dup bigint;
	caller_path text := pg_catalog.current_setting('search_path');
BEGIN
	-- no SET clause: the analyst's query resolves names as the caller does, with pg_catalog first
	PERFORM pg_catalog.set_config('search_path', pg_catalog.concat_ws(', ', 'pg_catalog', NULLIF(caller_path, '')), true);
	confidence := coalesce(confidence, e.confidence);
	EXECUTE format('SELECT s.unit_id FROM %s AS s(unit_id, segment) GROUP BY s.unit_id HAVING count(*) > 1 LIMIT 1', src)
		INTO dup;
	IF dup IS NOT NULL THEN
		RAISE EXCEPTION 'segment query returns more than one row for unit %', dup USING ERRCODE = '21000';
	END IF;
	RETURN QUERY EXECUTE format($q$
		WITH seg AS (
			SELECT s.unit_id::bigint AS unit_id, s.segment::text AS segment FROM %s AS s(unit_id, segment)
		), vals AS (
			SELECT o.unit_id, sum(o.value) AS value FROM personalize.outcomes o
			WHERE o.experiment = $1 AND o.metric = $2 GROUP BY o.unit_id
		), cells AS (
			SELECT seg.segment, a.arm, count(*) AS n, personalize.moments(v.value) AS m
			FROM personalize.assignments a
			LEFT JOIN seg ON seg.unit_id = a.unit_id
			LEFT JOIN vals v ON v.unit_id = a.unit_id
			WHERE a.experiment = $1
			GROUP BY seg.segment, a.arm
		), grid AS (
			SELECT g.segment, ea.arm, ea.position, ea.arm = $4 AS is_control,
			       personalize.moments_pad(c.m, coalesce(c.n, 0)) AS m
			FROM (SELECT DISTINCT cells.segment FROM cells) g
			CROSS JOIN personalize.experiment_arms ea
			LEFT JOIN cells c ON c.segment IS NOT DISTINCT FROM g.segment AND c.arm = ea.arm
			WHERE ea.experiment = $1
		), kinds AS (
			SELECT grid.*, bool_and(grid.m[4] = 0) OVER () AS proportion,
			       first_value(grid.m) OVER (PARTITION BY grid.segment ORDER BY grid.is_control DESC) AS control_m
			FROM grid
		), tests AS (
			SELECT k.*, t.* FROM kinds k
			LEFT JOIN LATERAL personalize.ab_test(k.control_m, k.m, k.proportion, $3) t ON NOT k.is_control
		)
		SELECT t.segment, t.arm, t.is_control, t.m[1]::bigint,
		       CASE WHEN t.m[1] > 0 THEN t.m[2] / t.m[1] END,
		       CASE WHEN t.m[1] > 1 THEN sqrt(t.m[3] / (t.m[1] - 1)) END,
		       t.lift_abs, t.lift_abs_low, t.lift_abs_high, t.lift_rel, t.lift_rel_low, t.lift_rel_high,
		       t.p_value,
		       (personalize.p_adjust(array_agg(t.p_value) OVER w, 'bh'))[row_number() OVER w],
		       CASE WHEN t.proportion THEN 'z' ELSE 'welch' END
		FROM tests t
		WINDOW w AS (ORDER BY t.segment NULLS LAST, t.position ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
		ORDER BY t.segment NULLS LAST, t.position
	$q$, src) USING experiment, metric, confidence, e.control;
	PERFORM pg_catalog.set_config('search_path', caller_path, true);
END
$$;

CREATE FUNCTION personalize.cuped_results(experiment text, metric text, covariate text,
		confidence double precision DEFAULT NULL)
	RETURNS TABLE (arm text, is_control boolean, n bigint, mean double precision, mean_adjusted double precision,
		stddev double precision, stddev_adjusted double precision, theta double precision,
		variance_reduction double precision,
		lift_abs double precision, lift_abs_low double precision, lift_abs_high double precision,
		p_value double precision,
		lift_abs_cuped double precision, lift_abs_cuped_low double precision, lift_abs_cuped_high double precision,
		lift_rel_cuped double precision, lift_rel_cuped_low double precision, lift_rel_cuped_high double precision,
		p_value_cuped double precision)
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
AS $$
DECLARE
	e personalize.experiments := personalize.experiment_metric_check(experiment, metric);
	src text := personalize.source_sql(covariate, 'covariate');
	caller_path text := pg_catalog.current_setting('search_path');
BEGIN
	-- no SET clause: the analyst's query resolves names as the caller does, with pg_catalog first
	PERFORM pg_catalog.set_config('search_path', pg_catalog.concat_ws(', ', 'pg_catalog', NULLIF(caller_path, '')), true);
	confidence := coalesce(confidence, e.confidence);
	RETURN QUERY EXECUTE format($q$
		WITH cov AS (
			SELECT s.unit_id::bigint AS unit_id, sum(s.value::double precision) AS x
			FROM %s AS s(unit_id, value) GROUP BY 1
		), vals AS (
			SELECT o.unit_id, sum(o.value) AS y FROM personalize.outcomes o
			WHERE o.experiment = $1 AND o.metric = $2 GROUP BY o.unit_id
		), sets AS (
			SELECT a.arm, personalize.comoments(coalesce(v.y, 0), coalesce(c.x, 0)) AS s
			FROM personalize.assignments a
			LEFT JOIN vals v ON v.unit_id = a.unit_id
			LEFT JOIN cov c ON c.unit_id = a.unit_id
			WHERE a.experiment = $1
			GROUP BY GROUPING SETS ((a.arm), ())
		), pooled AS (
			SELECT sets.s[6] / nullif(sets.s[5], 0) AS theta, sets.s[3] / sets.s[1] AS xbar,
			       sets.s[7] = 0 AS proportion
			FROM sets WHERE sets.arm IS NULL
		), arms AS (
			SELECT ea.arm, ea.position, ea.arm = $4 AS is_control, p.theta, p.proportion,
			       coalesce(st.s, '{0,0,0,0,0,0,0}') AS s,
			       -- plain moments of y; adjusted y - theta (x - pooled mean of x)
			       ARRAY[coalesce(st.s[1], 0), coalesce(st.s[2], 0), coalesce(st.s[4], 0), coalesce(st.s[7], 0)] AS plain,
			       ARRAY[coalesce(st.s[1], 0),
			             coalesce(st.s[2] - coalesce(p.theta, 0) * (st.s[3] - st.s[1] * p.xbar), 0),
			             coalesce(greatest(st.s[4] - 2 * coalesce(p.theta, 0) * st.s[6]
			                               + coalesce(p.theta, 0) ^ 2 * st.s[5], 0), 0),
			             1] AS adjusted
			FROM personalize.experiment_arms ea
			CROSS JOIN pooled p
			LEFT JOIN sets st ON st.arm = ea.arm
			WHERE ea.experiment = $1
		), ctrl AS (
			SELECT arms.plain, arms.adjusted FROM arms WHERE arms.is_control
		)
		SELECT a.arm, a.is_control, a.s[1]::bigint,
		       CASE WHEN a.s[1] > 0 THEN a.plain[2] / a.plain[1] END,
		       CASE WHEN a.s[1] > 0 THEN a.adjusted[2] / a.adjusted[1] END,
		       CASE WHEN a.s[1] > 1 THEN sqrt(a.plain[3] / (a.s[1] - 1)) END,
		       CASE WHEN a.s[1] > 1 THEN sqrt(a.adjusted[3] / (a.s[1] - 1)) END,
		       a.theta,
		       CASE WHEN a.plain[3] > 0 THEN 1 - a.adjusted[3] / a.plain[3] END,
		       p.lift_abs, p.lift_abs_low, p.lift_abs_high, p.p_value,
		       q.lift_abs, q.lift_abs_low, q.lift_abs_high, q.lift_rel, q.lift_rel_low, q.lift_rel_high, q.p_value
		FROM arms a CROSS JOIN ctrl c
		LEFT JOIN LATERAL personalize.ab_test(c.plain, a.plain, a.proportion, $3) p ON NOT a.is_control
		LEFT JOIN LATERAL personalize.ab_test(c.adjusted, a.adjusted, false, $3) q ON NOT a.is_control
		ORDER BY a.position
	$q$, src) USING experiment, metric, confidence, e.control;
	PERFORM pg_catalog.set_config('search_path', caller_path, true);
END
$$;

-- ==== src/fairness.sql ====
-- fairness: group fairness of classifiers (fairlearn's definitions), a
-- prediction log with daily fairness views, and exposure fairness of rankings.

-- ---------------------------------------------------------------- prediction log

CREATE TABLE personalize.prediction_log (
	model text NOT NULL,
	subject_id bigint,
	score double precision,
	prediction boolean,
	label boolean,
	attributes jsonb NOT NULL DEFAULT '{}',
	logged_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE personalize.prediction_log IS 'predictions with their eventual labels and group attributes, for fairness monitoring';
CREATE INDEX prediction_log_model_time ON personalize.prediction_log (model, logged_at);
CREATE INDEX prediction_log_subject ON personalize.prediction_log (subject_id);
SELECT pg_catalog.pg_extension_config_dump('personalize.prediction_log', '');

-- ---------------------------------------------------------------- shared arithmetic

-- Per-group rates from the four counts of a confusion matrix. A rate whose
-- denominator is zero is NULL (no positives: tpr; no negatives: fpr; nothing
-- predicted positive: precision).
CREATE FUNCTION personalize.fairness_rates(n bigint, positives bigint, predicted bigint, true_positives bigint,
	OUT base_rate double precision, OUT selection_rate double precision,
	OUT tpr double precision, OUT fpr double precision, OUT "precision" double precision)
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT $2::float8 / NULLIF($1, 0),
	       $3::float8 / NULLIF($1, 0),
	       $4::float8 / NULLIF($2, 0),
	       ($3 - $4)::float8 / NULLIF($1 - $2, 0),
	       $4::float8 / NULLIF($3, 0)
$$;

-- fairlearn's between-group summaries from the extreme rates: difference =
-- max - min, ratio = min / max (NULL when max is 0), equalized odds = the
-- larger difference / the smaller ratio of TPR and FPR (NULL when either is).
CREATE FUNCTION personalize.fairness_gaps(
	sel_min double precision, sel_max double precision,
	tpr_min double precision, tpr_max double precision,
	fpr_min double precision, fpr_max double precision,
	OUT demographic_parity_difference double precision, OUT demographic_parity_ratio double precision,
	OUT equalized_odds_difference double precision, OUT equalized_odds_ratio double precision,
	OUT equal_opportunity_difference double precision)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT $2 - $1,
	       $1 / NULLIF($2, 0),
	       CASE WHEN $4 - $3 IS NOT NULL AND $6 - $5 IS NOT NULL THEN greatest($4 - $3, $6 - $5) END,
	       CASE WHEN $3 / NULLIF($4, 0) IS NOT NULL AND $5 / NULLIF($6, 0) IS NOT NULL
	            THEN least($3 / NULLIF($4, 0), $5 / NULLIF($6, 0)) END,
	       $4 - $3
$$;

-- Sources are turned into SQL by personalize.source_sql (sqlsource.sql). The functions that
-- run the caller's SQL text (fairness_by_group, fairness_summary, exposure_by_group)
-- deliberately do not pin search_path: names in that text resolve as the caller would
-- resolve them. Their own references are schema-qualified.

-- ---------------------------------------------------------------- group fairness

CREATE FUNCTION personalize.fairness_by_group(source text, group_col text, label_col text, prediction_col text)
RETURNS TABLE (group_value text, n bigint, base_rate double precision, selection_rate double precision,
               tpr double precision, fpr double precision, "precision" double precision)
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
AS $$
DECLARE
	prediction text;
BEGIN
	-- a plain name is a column (quoted as given); anything else an expression
	IF pg_catalog.regexp_like(prediction_col, '^[A-Za-z_][A-Za-z0-9_$]*$') THEN
		prediction := pg_catalog.format('src.%I', prediction_col);
	ELSE
		prediction := pg_catalog.concat('(', prediction_col, ')');
	END IF;
	RETURN QUERY EXECUTE pg_catalog.format(
		'SELECT c.g::text, c.n, r.base_rate, r.selection_rate, r.tpr, r.fpr, r."precision"
		 FROM (SELECT d.g, pg_catalog.count(*) AS n, pg_catalog.count(*) FILTER (WHERE d.l) AS p,
		              pg_catalog.count(*) FILTER (WHERE d.y) AS pp, pg_catalog.count(*) FILTER (WHERE d.l AND d.y) AS tp
		       FROM (SELECT src.%I AS g, (src.%I)::boolean AS l, (%s)::boolean AS y FROM %s AS src) d
		       WHERE d.l IS NOT NULL AND d.y IS NOT NULL
		       GROUP BY d.g) c
		 CROSS JOIN LATERAL personalize.fairness_rates(c.n, c.p, c.pp, c.tp) r
		 ORDER BY c.g NULLS LAST',
		group_col, label_col, prediction, personalize.source_sql(source));
END
$$;

CREATE FUNCTION personalize.fairness_summary(source text, group_col text, label_col text, prediction_col text)
RETURNS TABLE (demographic_parity_difference double precision, demographic_parity_ratio double precision,
               equalized_odds_difference double precision, equalized_odds_ratio double precision,
               equal_opportunity_difference double precision)
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
AS $$
	SELECT s.* FROM
	  (SELECT pg_catalog.min(g.selection_rate) AS smin, pg_catalog.max(g.selection_rate) AS smax, pg_catalog.min(g.tpr) AS tmin,
	          pg_catalog.max(g.tpr) AS tmax, pg_catalog.min(g.fpr) AS fmin, pg_catalog.max(g.fpr) AS fmax
	   FROM personalize.fairness_by_group($1, $2, $3, $4) g) m
	  CROSS JOIN LATERAL personalize.fairness_gaps(m.smin, m.smax, m.tmin, m.tmax, m.fmin, m.fmax) s
$$;

-- ---------------------------------------------------------------- monitoring views

CREATE VIEW personalize.fairness_daily_groups WITH (security_invoker = true) AS
SELECT c.model, c.day, c.attribute, c.group_value, c.n,
       r.base_rate, r.selection_rate, r.tpr, r.fpr, r."precision"
FROM (SELECT l.model, (l.logged_at AT TIME ZONE 'UTC')::date AS day, a.key AS attribute, a.value AS group_value,
             pg_catalog.count(*) AS n, pg_catalog.count(*) FILTER (WHERE l.label) AS p, pg_catalog.count(*) FILTER (WHERE l.prediction) AS pp,
             pg_catalog.count(*) FILTER (WHERE l.label AND l.prediction) AS tp
      FROM personalize.prediction_log l
      CROSS JOIN LATERAL pg_catalog.jsonb_each_text(l.attributes) a
      WHERE l.label IS NOT NULL AND l.prediction IS NOT NULL
      GROUP BY 1, 2, 3, 4) c
CROSS JOIN LATERAL personalize.fairness_rates(c.n, c.p, c.pp, c.tp) r;
COMMENT ON VIEW personalize.fairness_daily_groups IS 'per model, UTC day, attribute and group: the rates of fairness_by_group over the prediction log';

CREATE VIEW personalize.fairness_daily WITH (security_invoker = true) AS
SELECT m.model, m.day, m.attribute, m.groups, m.n, s.*
FROM (SELECT g.model, g.day, g.attribute, pg_catalog.count(*) AS groups, sum(g.n)::bigint AS n,
             min(g.selection_rate) AS smin, max(g.selection_rate) AS smax, min(g.tpr) AS tmin,
             max(g.tpr) AS tmax, min(g.fpr) AS fmin, max(g.fpr) AS fmax
      FROM personalize.fairness_daily_groups g
      GROUP BY 1, 2, 3) m
CROSS JOIN LATERAL personalize.fairness_gaps(m.smin, m.smax, m.tmin, m.tmax, m.fmin, m.fmax) s;
COMMENT ON VIEW personalize.fairness_daily IS 'per model, UTC day and attribute: the figures of fairness_summary over the prediction log';

-- ---------------------------------------------------------------- ranking exposure

-- Position-discounted exposure 1 / log2(rank + 1) per item group, summed over
-- every recommendation list, as a share of all exposure, beside the group's
-- share of the catalog.
CREATE FUNCTION personalize.exposure_by_group(recommendations text, catalog text, item_col text, group_col text,
                                              rank_col text DEFAULT 'rank')
RETURNS TABLE (group_value text, catalog_items bigint, catalog_share double precision,
               exposure double precision, exposure_share double precision, exposure_ratio double precision)
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
AS $$
BEGIN
	RETURN QUERY EXECUTE pg_catalog.format(
		'WITH cat AS (SELECT src.%1$I AS item, src.%2$I AS g FROM %4$s AS src),
		      per AS (SELECT cat.g, 1 AS items, 0::float8 AS e FROM cat
		              UNION ALL
		              SELECT cat.g, 0, 1.0 / (pg_catalog.ln(rec.r + 1.0) / pg_catalog.ln(2.0))
		              FROM (SELECT src.%1$I AS item, (src.%3$I)::float8 AS r FROM %5$s AS src) rec
		              LEFT JOIN cat ON cat.item = rec.item
		              WHERE rec.r >= 1),
		      t AS (SELECT per.g, pg_catalog.sum(per.items)::bigint AS items, pg_catalog.sum(per.e) AS e FROM per GROUP BY per.g)
		 SELECT t.g::text, t.items, t.items::float8 / NULLIF(pg_catalog.sum(t.items) OVER (), 0),
		        t.e, t.e / NULLIF(pg_catalog.sum(t.e) OVER (), 0),
		        (t.e / NULLIF(pg_catalog.sum(t.e) OVER (), 0)) / NULLIF(t.items::float8 / NULLIF(pg_catalog.sum(t.items) OVER (), 0), 0)
		 FROM t ORDER BY t.g NULLS LAST',
		item_col, group_col, rank_col, personalize.source_sql(catalog), personalize.source_sql(recommendations));
END
$$;

-- ==== src/consent.sql ====
-- consent: append-only consent history, consent enforced by row-level security, erasure.
--
-- Everything here runs as the invoker (no SECURITY DEFINER) with a pinned
-- search_path. The consent check lives in one place: the policy expression that
-- personalize.protect() writes, which calls personalize.has_consent(). A later
-- mechanism (e.g. for Citus, where policies with subqueries or table-reading
-- functions fail inside shard queries) replaces protect()/has_consent() without
-- touching callers.

-- ---------------------------------------------------------------- history

CREATE TABLE personalize.consents (
	seq bigserial PRIMARY KEY,
	subject_id bigint NOT NULL,
	purpose text NOT NULL CHECK (purpose <> ''),
	granted boolean NOT NULL,
	recorded_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	source text
);
COMMENT ON TABLE personalize.consents IS 'append-only consent history: the latest row per (subject_id, purpose) decides';
CREATE INDEX consents_subject_purpose ON personalize.consents (subject_id, purpose, seq DESC);

-- Append-only: UPDATE and TRUNCATE are refused; DELETE only for the subject
-- that personalize.forget() is erasing (it sets personalize.erasing_subject
-- for the duration of the erasure, transaction-locally).
CREATE FUNCTION personalize.consents_append_only() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF TG_OP = 'DELETE'
	   AND pg_catalog.current_setting('personalize.erasing_subject', true) = OLD.subject_id::text THEN
		RETURN OLD;
	END IF;
	RAISE EXCEPTION 'consent history is append-only'
		USING ERRCODE = '55000',
		      DETAIL = pg_catalog.format('%s on personalize.consents is not allowed.', TG_OP),
		      HINT = 'Record a change with personalize.set_consent(); erase a subject with personalize.forget().';
END
$$;

CREATE TRIGGER consents_append_only BEFORE UPDATE OR DELETE ON personalize.consents
	FOR EACH ROW EXECUTE FUNCTION personalize.consents_append_only();
CREATE TRIGGER consents_no_truncate BEFORE TRUNCATE ON personalize.consents
	FOR EACH STATEMENT EXECUTE FUNCTION personalize.consents_append_only();

CREATE VIEW personalize.current_consent WITH (security_invoker = true) AS
SELECT DISTINCT ON (subject_id, purpose) subject_id, purpose, granted, recorded_at, source
FROM personalize.consents
ORDER BY subject_id, purpose, seq DESC;
COMMENT ON VIEW personalize.current_consent IS 'latest consent decision per subject and purpose';

-- The policy predicate. STABLE: within one statement every row sees the
-- consent state of the statement's snapshot; the next statement sees a
-- withdrawal. No row (never asked) means no consent. The caller needs SELECT
-- on personalize.consents; without it reading a protected table fails
-- (closed, not open).
CREATE FUNCTION personalize.has_consent(subject_id bigint, purpose text) RETURNS boolean
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce((SELECT c.granted FROM personalize.consents c
	                 WHERE c.subject_id = $1 AND c.purpose = $2
	                 ORDER BY c.seq DESC LIMIT 1), false)
$$;

CREATE FUNCTION personalize.set_consent(subject_id bigint, purpose text, granted boolean, source text DEFAULT NULL)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	at timestamptz;
BEGIN
	IF subject_id IS NULL OR purpose IS NULL OR granted IS NULL THEN
		RAISE EXCEPTION 'subject_id, purpose and granted must not be null' USING ERRCODE = '22004';
	END IF;
	IF purpose = '' THEN
		RAISE EXCEPTION 'purpose must not be empty' USING ERRCODE = '22023';
	END IF;
	INSERT INTO personalize.consents (subject_id, purpose, granted, source)
	VALUES (set_consent.subject_id, set_consent.purpose, set_consent.granted, set_consent.source)
	RETURNING recorded_at INTO at;
	RETURN at;
END
$$;

-- ---------------------------------------------------------------- protection

CREATE TABLE personalize.protected_tables (
	relid regclass PRIMARY KEY,
	subject_col name NOT NULL,
	purpose text NOT NULL,
	exempt_role name,
	rls_was_enabled boolean NOT NULL,
	rls_was_forced boolean NOT NULL,
	protected_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE personalize.protected_tables IS 'tables whose rows personalize.protect() shows only to consented subjects';

CREATE FUNCTION personalize.protect(tbl regclass, subject_col name, purpose text, exempt regrole DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	rel record;
	coltype regtype;
	predicate text;
BEGIN
	IF tbl IS NULL OR subject_col IS NULL OR purpose IS NULL THEN
		RAISE EXCEPTION 'tbl, subject_col and purpose must not be null' USING ERRCODE = '22004';
	END IF;
	IF purpose = '' THEN
		RAISE EXCEPTION 'purpose must not be empty' USING ERRCODE = '22023';
	END IF;
	SELECT c.relkind, c.relrowsecurity, c.relforcerowsecurity INTO rel FROM pg_class c WHERE c.oid = tbl;
	IF rel.relkind NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '"%" is not a table', tbl USING ERRCODE = '42809';
	END IF;
	SELECT a.atttypid INTO coltype FROM pg_attribute a
	WHERE a.attrelid = tbl AND a.attname = subject_col AND a.attnum > 0 AND NOT a.attisdropped;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'column "%" of relation "%" does not exist', subject_col, tbl USING ERRCODE = '42703';
	END IF;
	IF coltype NOT IN ('bigint'::regtype, 'integer'::regtype, 'smallint'::regtype) THEN
		RAISE EXCEPTION 'column "%" is of type %, expected bigint, integer or smallint', subject_col, coltype
			USING ERRCODE = '42804';
	END IF;
	IF EXISTS (SELECT FROM personalize.protected_tables p WHERE p.relid = tbl) THEN
		RAISE EXCEPTION 'relation "%" is already protected', tbl USING ERRCODE = '42710',
			HINT = 'Call personalize.unprotect() first.';
	END IF;

	-- THE policy expression (the one place to change the mechanism).
	-- The subject's latest decision for the purpose is a grant. Written as a
	-- correlated EXISTS (not a call to has_consent, which it equals) so that
	-- the planner can hash the consented subjects once per statement for
	-- scans and probe the index for point queries; the column is qualified
	-- with the table name so that it cannot be captured by the subquery.
	predicate := pg_catalog.format(
		'EXISTS (SELECT FROM personalize.consents c WHERE c.subject_id = %I.%I AND c.purpose = %L AND c.granted'
		' AND NOT EXISTS (SELECT FROM personalize.consents l'
		' WHERE l.subject_id = c.subject_id AND l.purpose = c.purpose AND l.seq > c.seq))',
		(SELECT r.relname FROM pg_class r WHERE r.oid = tbl), subject_col, purpose);
	IF exempt IS NOT NULL THEN
		predicate := pg_catalog.format('pg_catalog.pg_has_role(%L, ''MEMBER'') OR %s', exempt::text, predicate);
	END IF;

	-- Restrictive, so that it narrows any policy the table already has
	-- instead of widening it; inserts are not checked (rows of subjects
	-- without consent may be stored, they stay invisible).
	EXECUTE pg_catalog.format('CREATE POLICY personalize_consent ON %s AS RESTRICTIVE FOR ALL TO PUBLIC USING (%s) WITH CHECK (true)',
	                          tbl, predicate);
	IF NOT rel.relrowsecurity THEN
		-- RLS was off: every row was visible, keep that for consented rows.
		EXECUTE pg_catalog.format('CREATE POLICY personalize_rows ON %s AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true)', tbl);
		EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
	END IF;
	EXECUTE pg_catalog.format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);

	INSERT INTO personalize.protected_tables (relid, subject_col, purpose, exempt_role, rls_was_enabled, rls_was_forced)
	VALUES (tbl, subject_col, purpose, exempt::text, rel.relrowsecurity, rel.relforcerowsecurity);
END
$$;

CREATE FUNCTION personalize.unprotect(tbl regclass) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p record;
BEGIN
	SELECT * INTO p FROM personalize.protected_tables t WHERE t.relid = tbl;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'relation "%" is not protected', tbl USING ERRCODE = '42704';
	END IF;
	EXECUTE pg_catalog.format('DROP POLICY personalize_consent ON %s', tbl);
	IF NOT p.rls_was_enabled THEN
		EXECUTE pg_catalog.format('DROP POLICY IF EXISTS personalize_rows ON %s', tbl);
		EXECUTE pg_catalog.format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', tbl);
	END IF;
	IF NOT p.rls_was_forced THEN
		EXECUTE pg_catalog.format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', tbl);
	END IF;
	DELETE FROM personalize.protected_tables t WHERE t.relid = tbl;
END
$$;

-- ---------------------------------------------------------------- erasure

CREATE TABLE personalize.erasures (
	id bigserial PRIMARY KEY,
	erased_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	erased_by name NOT NULL DEFAULT CURRENT_USER,
	touched jsonb NOT NULL
);
COMMENT ON TABLE personalize.erasures IS 'audit of personalize.forget() calls: when, by whom, how many rows where; no subject identifier';

-- forget reaches into the models through personalize.forget_in_models
-- (registry.sql): the subject is removed from every stored model, which is
-- marked stale.
CREATE FUNCTION personalize.forget(subject_id bigint)
RETURNS TABLE (object text, removed bigint)
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p record;
	n bigint;
	touched jsonb := '{}';
	subject bigint := forget.subject_id;
BEGIN
	-- Refuse rather than silently skip rows the policy hides from us.
	FOR p IN SELECT * FROM personalize.protected_tables ORDER BY relid::text LOOP
		IF pg_catalog.row_security_active(p.relid)
		   AND NOT (p.exempt_role IS NOT NULL AND pg_catalog.pg_has_role(p.exempt_role, 'MEMBER')) THEN
			RAISE EXCEPTION 'role "%" cannot see every row of "%"', CURRENT_USER, p.relid
				USING ERRCODE = '42501',
				      HINT = 'Run personalize.forget() as the role exempted by personalize.protect(), a superuser or a BYPASSRLS role.';
		END IF;
	END LOOP;

	FOR p IN SELECT * FROM personalize.protected_tables ORDER BY relid::text LOOP
		EXECUTE pg_catalog.format('DELETE FROM %s WHERE %I = $1', p.relid, p.subject_col) USING subject;
		GET DIAGNOSTICS n = ROW_COUNT;
		object := p.relid::text; removed := n;
		touched := touched || pg_catalog.jsonb_build_object(object, n);
		RETURN NEXT;
	END LOOP;

	IF pg_catalog.to_regclass('personalize.prediction_log') IS NOT NULL THEN
		EXECUTE 'DELETE FROM personalize.prediction_log WHERE subject_id = $1' USING subject;
		GET DIAGNOSTICS n = ROW_COUNT;
		object := 'personalize.prediction_log'; removed := n;
		touched := touched || pg_catalog.jsonb_build_object(object, n);
		RETURN NEXT;
	END IF;

	object := 'models'; removed := personalize.forget_in_models(subject);
	touched := touched || pg_catalog.jsonb_build_object(object, removed);
	RETURN NEXT;

	-- Last, the consent history itself (the documented erasure path).
	PERFORM pg_catalog.set_config('personalize.erasing_subject', subject::text, true);
	DELETE FROM personalize.consents c WHERE c.subject_id = subject;
	GET DIAGNOSTICS n = ROW_COUNT;
	PERFORM pg_catalog.set_config('personalize.erasing_subject', '', true);
	object := 'personalize.consents'; removed := n;
	touched := touched || pg_catalog.jsonb_build_object(object, n);
	RETURN NEXT;

	INSERT INTO personalize.erasures (touched) VALUES (touched);
END
$$;

SELECT pg_catalog.pg_extension_config_dump('personalize.consents', '');
SELECT pg_catalog.pg_extension_config_dump('personalize.consents_seq_seq', '');
SELECT pg_catalog.pg_extension_config_dump('personalize.protected_tables', '');
SELECT pg_catalog.pg_extension_config_dump('personalize.erasures', '');
SELECT pg_catalog.pg_extension_config_dump('personalize.erasures_id_seq', '');
