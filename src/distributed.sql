-- distributed: ALS and item-kNN trained from a Citus table distributed by user_id, without
-- gathering its rows (distributed.c). personalize.train calls it for such a
-- table; the node functions are called by its queries on the nodes.

CREATE FUNCTION personalize.train_absorb(run bigint, shard oid, user_id bigint, item_id bigint, weight real)
	RETURNS bigint
	AS 'MODULE_PATHNAME', 'train_absorb' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION personalize.train_absorb(bigint, oid, bigint, bigint, real) IS
	'distributed training, on a node: keep one row of the run in this backend; the backend''s token for its anchor rows';

CREATE FUNCTION personalize.train_round(run bigint, round bigint, payload bytea) RETURNS SETOF bytea
	AS 'MODULE_PATHNAME', 'train_round' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION personalize.train_round(bigint, bigint, bytea) IS
	'distributed training, on a node: answer one round of the coordinator for this backend''s rows';

CREATE FUNCTION personalize.als_fit_distributed(source regclass, options jsonb DEFAULT '{}')
	RETURNS personalize.model
	AS 'MODULE_PATHNAME', 'als_fit_distributed' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION personalize.als_fit_distributed(regclass, jsonb) IS
	'the ALS model of als_fit over a Citus table distributed by user_id, trained on the nodes that hold the rows';

CREATE FUNCTION personalize.itemknn_fit_distributed(source regclass, options jsonb DEFAULT '{}', range_items integer DEFAULT 0)
	RETURNS personalize.model
	AS 'MODULE_PATHNAME', 'itemknn_fit_distributed' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION personalize.itemknn_fit_distributed(regclass, jsonb, integer) IS
	'the item-kNN model of itemknn_fit over a Citus table distributed by user_id, its co-occurrences summed on the nodes that hold the rows, range_items rows at a time (0: automatic)';
