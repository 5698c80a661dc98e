-- quality: data-quality checks of an interaction source, one row per check.
-- The counting is one scan with the C aggregate interaction_profile; the policy
-- (thresholds, severities, wording) is in quality_checks.

CREATE FUNCTION personalize.interaction_profile_transfn(internal, bigint, bigint, double precision, timestamptz, jsonb)
RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT PARALLEL SAFE;
CREATE FUNCTION personalize.interaction_profile_combine(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT PARALLEL SAFE;
CREATE FUNCTION personalize.interaction_profile_serialize(internal) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.interaction_profile_deserialize(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.interaction_profile_final(internal) RETURNS jsonb
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL SAFE;

CREATE AGGREGATE personalize.interaction_profile(user_id bigint, item_id bigint, weight double precision,
                                                 occurred_at timestamptz, settings jsonb) (
	SFUNC = personalize.interaction_profile_transfn,
	STYPE = internal,
	COMBINEFUNC = personalize.interaction_profile_combine,
	SERIALFUNC = personalize.interaction_profile_serialize,
	DESERIALFUNC = personalize.interaction_profile_deserialize,
	FINALFUNC = personalize.interaction_profile_final,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE personalize.interaction_profile(bigint, bigint, double precision, timestamptz, jsonb) IS
	'counts behind the data-quality checks of interactions, in one scan (jsonb)';

-- The checks, their default severity and threshold, in the order they are reported.
CREATE FUNCTION personalize.quality_check_defaults()
RETURNS TABLE (check_name text, severity text, threshold jsonb, description text)
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	VALUES ('rows', 'error', '1'::jsonb, 'at least this many rows'),
	       ('null_user_ids', 'error', '0', 'share of rows with a NULL user_id'),
	       ('null_item_ids', 'error', '0', 'share of rows with a NULL item_id'),
	       ('null_weights', 'error', '0', 'share of rows with a NULL weight'),
	       ('negative_weights', 'error', '0', 'share of rows with a negative weight'),
	       ('non_finite_weights', 'error', '0', 'share of rows with a NaN, infinite or beyond-real weight'),
	       ('null_timestamps', 'warning', '0', 'share of rows with a NULL or -infinity occurred_at'),
	       ('future_timestamps', 'error', '0', 'share of rows with occurred_at after as_of + future_tolerance'),
	       ('duplicate_rows', 'warning', '0', 'share of rows repeating an earlier (user_id, item_id, occurred_at)'),
	       ('freshness', 'error', '"2 days"', 'age of the newest occurred_at at as_of, in seconds'),
	       ('volume', 'warning', '3', 'rows of the last window over the mean of the windows before; fails outside [1/t, t]'),
	       ('unseen_users', 'warning', '0.5', 'share of distinct users that the active model does not know'),
	       ('unseen_items', 'warning', '0.5', 'share of distinct items that the active model does not know')
$$;
COMMENT ON FUNCTION personalize.quality_check_defaults() IS 'the data-quality checks with their default severity and threshold';

-- Options of check_interactions, validated, as the settings of interaction_profile.
CREATE FUNCTION personalize.quality_settings(options jsonb, columns text[])
RETURNS jsonb
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	known text[] := ARRAY['as_of', 'window', 'trailing_windows', 'future_tolerance', 'model', 'skip', 'thresholds', 'severity'];
	checks text[] := ARRAY(SELECT d.check_name FROM personalize.quality_check_defaults() d);
	key text;
	as_of timestamptz;
	window_length interval;
	tolerance interval;
	trailing_count integer;
	skip text[];
	settings jsonb;
BEGIN
	IF jsonb_typeof(options) <> 'object' THEN
		RAISE EXCEPTION 'options must be a jsonb object' USING ERRCODE = '22023';
	END IF;
	FOR key IN SELECT jsonb_object_keys(options) LOOP
		IF NOT key = ANY (known) THEN
			RAISE EXCEPTION 'unknown option "%"', key USING ERRCODE = '22023',
				HINT = 'Options are ' || array_to_string(known, ', ') || '.';
		END IF;
	END LOOP;
	FOR key IN SELECT jsonb_object_keys(coalesce(options -> 'thresholds', '{}')) UNION ALL
	           SELECT jsonb_object_keys(coalesce(options -> 'severity', '{}')) UNION ALL
	           SELECT jsonb_array_elements_text(coalesce(options -> 'skip', '[]')) LOOP
		IF NOT key = ANY (checks) THEN
			RAISE EXCEPTION 'unknown check "%"', key USING ERRCODE = '22023',
				HINT = 'Checks are ' || array_to_string(checks, ', ') || '.';
		END IF;
	END LOOP;
	IF EXISTS (SELECT FROM jsonb_each(coalesce(options -> 'severity', '{}')) s WHERE s.value NOT IN ('"error"', '"warning"')) THEN
		RAISE EXCEPTION 'severity must be "error" or "warning"' USING ERRCODE = '22023';
	END IF;
	IF EXISTS (SELECT FROM jsonb_each(coalesce(options -> 'thresholds', '{}')) t
	           WHERE CASE WHEN t.key = 'freshness' THEN jsonb_typeof(t.value) <> 'string'
	                      ELSE jsonb_typeof(t.value) <> 'number' OR (t.value)::text::float8 < 0 END) THEN
		RAISE EXCEPTION 'thresholds must be non-negative numbers (freshness: an interval)' USING ERRCODE = '22023';
	END IF;

	as_of := coalesce((options ->> 'as_of')::timestamptz, now());
	window_length := coalesce((options ->> 'window')::interval, interval '1 day');
	tolerance := coalesce((options ->> 'future_tolerance')::interval, interval '5 minutes');
	trailing_count := coalesce((options ->> 'trailing_windows')::integer, 7);
	PERFORM (options #>> '{thresholds,freshness}')::interval;
	IF NOT isfinite(as_of) THEN
		RAISE EXCEPTION 'as_of must be a finite timestamp' USING ERRCODE = '22023';
	END IF;
	IF window_length <= interval '0' THEN
		RAISE EXCEPTION 'window must be positive, not %', window_length USING ERRCODE = '22023';
	END IF;
	IF tolerance < interval '0' THEN
		RAISE EXCEPTION 'future_tolerance must not be negative, not %', tolerance USING ERRCODE = '22023';
	END IF;
	IF trailing_count NOT BETWEEN 1 AND 365 THEN
		RAISE EXCEPTION 'trailing_windows must be between 1 and 365, not %', trailing_count USING ERRCODE = '22023';
	END IF;
	skip := ARRAY(SELECT jsonb_array_elements_text(coalesce(options -> 'skip', '[]')));

	settings := jsonb_build_object(
		'as_of_us', extract(epoch FROM as_of) * 1000000,
		'window_us', extract(epoch FROM window_length) * 1000000,
		'windows', trailing_count,
		'future_tolerance_us', extract(epoch FROM tolerance) * 1000000,
		'duplicates', 'occurred_at' = ANY (columns) AND NOT 'duplicate_rows' = ANY (skip),
		'distinct', false);
	-- distinct users and items only when there is a model to compare them with
	IF options ? 'model' AND NOT skip @> ARRAY['unseen_users', 'unseen_items']
	   AND EXISTS (SELECT FROM personalize.models m WHERE m.name = quality_settings.options ->> 'model' AND m.active) THEN
		settings := settings || jsonb_build_object('model', options ->> 'model', 'distinct', true);
	END IF;
	RETURN settings;
END
$$;
COMMENT ON FUNCTION personalize.quality_settings(jsonb, text[]) IS 'check_interactions options, validated, as interaction_profile settings';

-- A profile against the thresholds: one row per check. passed is NULL when a
-- check cannot be evaluated (skipped, no occurred_at column, no active model).
CREATE FUNCTION personalize.quality_checks(profile jsonb, options jsonb DEFAULT '{}', columns text[] DEFAULT ARRAY['user_id', 'item_id', 'weight', 'occurred_at'])
RETURNS TABLE (check_name text, severity text, passed boolean, observed double precision, threshold double precision, detail text)
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	total_rows float8 := coalesce((profile ->> 'rows')::float8, 0);
	has_time boolean := 'occurred_at' = ANY (columns);
	skip text[] := ARRAY(SELECT jsonb_array_elements_text(coalesce(options -> 'skip', '[]')));
	model text := options ->> 'model';
	as_of timestamptz := coalesce((options ->> 'as_of')::timestamptz, now());
	window_length interval := coalesce((options ->> 'window')::interval, interval '1 day');
	d record;
	t float8;
	n float8;
	windows float8[];
	baseline float8;
	newest timestamptz;
BEGIN
	FOR d IN SELECT * FROM personalize.quality_check_defaults() LOOP
		check_name := d.check_name;
		severity := coalesce(options #>> ARRAY['severity', d.check_name], d.severity);
		threshold := CASE WHEN d.check_name = 'freshness'
		                  THEN extract(epoch FROM coalesce(options #>> '{thresholds,freshness}', d.threshold #>> '{}')::interval)
		                  ELSE coalesce(options #>> ARRAY['thresholds', d.check_name], d.threshold #>> '{}')::float8 END;
		t := threshold;
		passed := NULL;
		observed := NULL;
		detail := NULL;
		IF d.check_name = ANY (skip) THEN
			detail := 'skipped';
		ELSIF d.check_name = 'rows' THEN
			observed := total_rows;
			passed := total_rows >= t;
			detail := format('%s rows', total_rows);
		ELSIF total_rows = 0 THEN
			detail := 'no rows';
		ELSIF d.check_name IN ('null_timestamps', 'future_timestamps', 'duplicate_rows', 'freshness', 'volume') AND NOT has_time THEN
			detail := 'the source has no occurred_at column';
		ELSIF d.check_name IN ('null_user_ids', 'null_item_ids', 'null_weights', 'negative_weights',
		                       'non_finite_weights', 'null_timestamps', 'future_timestamps', 'duplicate_rows') THEN
			n := (profile ->> d.check_name)::float8;
			observed := n / total_rows;
			passed := observed <= t;
			detail := format('%s of %s rows', n, total_rows);
		ELSIF d.check_name = 'freshness' THEN
			newest := (profile ->> 'newest')::timestamptz;
			IF newest IS NULL THEN
				detail := 'no row has a usable occurred_at';
			ELSE
				observed := extract(epoch FROM as_of - newest);
				passed := observed <= t;
				detail := format('newest occurred_at %s is %s old', newest, justify_interval(as_of - newest));
			END IF;
		ELSIF d.check_name = 'volume' THEN
			windows := ARRAY(SELECT jsonb_array_elements_text(profile -> 'window_rows')::float8);
			-- the windows before the last one, counting only those that end after the oldest row
			SELECT avg(w.rows) INTO baseline
			FROM unnest(windows[2:]) WITH ORDINALITY w(rows, j)
			WHERE as_of - window_length * w.j > (profile ->> 'oldest')::timestamptz;
			IF baseline IS NULL OR baseline = 0 THEN
				detail := 'no rows in the windows before the last one';
			ELSE
				observed := windows[1] / baseline;
				passed := observed BETWEEN 1 / t AND t;
				detail := format('%s rows in the last %s against a mean of %s', windows[1], window_length, round(baseline::numeric, 1));
			END IF;
		ELSIF model IS NULL THEN
			detail := 'no model given';
		ELSIF NOT profile ? d.check_name THEN
			detail := CASE WHEN profile ? 'unseen_items' THEN format('model "%s" keeps no users', model)
			               ELSE format('model "%s" has no active version', model) END;
		ELSE
			n := (profile ->> d.check_name)::float8;
			observed := n / nullif((profile ->> CASE d.check_name WHEN 'unseen_users' THEN 'users' ELSE 'items' END)::float8, 0);
			passed := observed <= t;
			detail := format('%s of %s distinct %s unknown to model "%s"', n,
			                 profile ->> CASE d.check_name WHEN 'unseen_users' THEN 'users' ELSE 'items' END,
			                 CASE d.check_name WHEN 'unseen_users' THEN 'users' ELSE 'items' END, model);
		END IF;
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION personalize.quality_checks(jsonb, jsonb, text[]) IS 'an interaction_profile against thresholds, one row per check';

CREATE FUNCTION personalize.check_interactions(source text, options jsonb DEFAULT '{}')
RETURNS TABLE (check_name text, severity text, passed boolean, observed double precision, threshold double precision, detail text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
-- No pinned search_path: the source is resolved as the caller would; every name is qualified.
AS $$
DECLARE
	columns text[];
	settings jsonb;
	profile jsonb;
BEGIN
	IF source IS NULL OR options IS NULL THEN
		RAISE EXCEPTION 'source and options must not be NULL' USING ERRCODE = '22004';
	END IF;
	columns := personalize.source_columns(source);
	IF NOT columns OPERATOR(pg_catalog.@>) ARRAY['user_id', 'item_id'] THEN
		RAISE EXCEPTION 'source must have columns user_id and item_id' USING ERRCODE = '42703';
	END IF;
	settings := personalize.quality_settings(options, columns);
	-- runs as the caller: privileges and row-level security apply to the source
	EXECUTE pg_catalog.format('SELECT personalize.interaction_profile(s.user_id::pg_catalog.int8, s.item_id::pg_catalog.int8, %s, %s, $1) FROM %s AS s',
	                          CASE WHEN 'weight' OPERATOR(pg_catalog.=) ANY (columns) THEN 's.weight::pg_catalog.float8' ELSE '1::pg_catalog.float8' END,
	                          CASE WHEN 'occurred_at' OPERATOR(pg_catalog.=) ANY (columns) THEN 's.occurred_at::pg_catalog.timestamptz' ELSE 'NULL::pg_catalog.timestamptz' END,
	                          personalize.source_sql(source))
		INTO profile USING settings;
	-- as_of defaults to now(), the same in both helpers within a transaction
	RETURN QUERY SELECT * FROM personalize.quality_checks(coalesce(profile, '{"rows": 0}'), options, columns);
END
$$;
COMMENT ON FUNCTION personalize.check_interactions(text, jsonb) IS 'data-quality checks of an interaction source, one row per check';
