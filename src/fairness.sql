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
