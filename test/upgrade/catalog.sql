-- One line per property of every object of the extension, sorted: two
-- databases have the same extension catalog when these lines are equal.
-- Used by test/check_upgrade.sh to compare an updated install with a fresh one.
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'pg_personalize'),
members AS (
  SELECT d.classid, d.objid FROM pg_depend d, ext
  WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
),
rels AS (SELECT c.oid FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid)
SELECT line FROM (
  -- every member, with its comment
  SELECT pg_describe_object(m.classid, m.objid, 0) || ' | comment ' ||
         coalesce(obj_description(m.objid, (SELECT relname FROM pg_class WHERE oid = m.classid)), '-') AS line
  FROM members m
  UNION ALL
  -- functions: signature, result, kind, volatility, strictness, parallel safety, security, settings, ACL, body
  SELECT format('function %s | returns %s | kind %s | volatile %s | strict %s | parallel %s | secdef %s | leakproof %s | cost %s | rows %s | config %s | acl %s | lang %s | body %s',
                p.oid::regprocedure, pg_get_function_result(p.oid), p.prokind, p.provolatile, p.proisstrict,
                p.proparallel, p.prosecdef, p.proleakproof, p.procost, p.prorows, p.proconfig, p.proacl,
                (SELECT lanname FROM pg_language WHERE oid = p.prolang), md5(coalesce(p.prosrc, '') || coalesce(p.probin, '')))
  FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
  UNION ALL
  SELECT format('function %s | argument defaults %s', p.oid::regprocedure, pg_get_expr(p.proargdefaults, 0))
  FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid WHERE p.proargdefaults IS NOT NULL
  UNION ALL
  SELECT format('aggregate %s | trans %s %s | final %s modify %s extra %s | combine %s | serial %s %s | space %s | init %s | minvfunc %s',
                a.aggfnoid::regprocedure, a.aggtransfn, a.aggtranstype::regtype, a.aggfinalfn, a.aggfinalmodify,
                a.aggfinalextra, a.aggcombinefn, a.aggserialfn, a.aggdeserialfn, a.aggtransspace, a.agginitval, a.aggminvtransfn)
  FROM pg_aggregate a JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = a.aggfnoid
  UNION ALL
  -- types
  SELECT format('type %s | len %s | byval %s | type %s | in %s | out %s | recv %s | send %s | typmod %s %s | align %s | storage %s | analyze %s | subscript %s | acl %s',
                t.oid::regtype, t.typlen, t.typbyval, t.typtype, t.typinput, t.typoutput, t.typreceive, t.typsend,
                t.typmodin, t.typmodout, t.typalign, t.typstorage, t.typanalyze, t.typsubscript, t.typacl)
  FROM pg_type t JOIN members m ON m.classid = 'pg_type'::regclass AND m.objid = t.oid
  UNION ALL
  SELECT format('operator %s | result %s | code %s | commutator %s | negator %s | restrict %s | join %s | merges %s | hashes %s',
                o.oid::regoperator, o.oprresult::regtype, o.oprcode, o.oprcom::regoperator, o.oprnegate::regoperator,
                o.oprrest, o.oprjoin, o.oprcanmerge, o.oprcanhash)
  FROM pg_operator o JOIN members m ON m.classid = 'pg_operator'::regclass AND m.objid = o.oid
  UNION ALL
  SELECT format('cast %s -> %s | function %s | context %s | method %s', c.castsource::regtype, c.casttarget::regtype,
                c.castfunc::regprocedure, c.castcontext, c.castmethod)
  FROM pg_cast c JOIN members m ON m.classid = 'pg_cast'::regclass AND m.objid = c.oid
  UNION ALL
  SELECT format('opclass %s | family %s | type %s | default %s', oc.opcname, (SELECT opfname FROM pg_opfamily WHERE oid = oc.opcfamily),
                oc.opcintype::regtype, oc.opcdefault)
  FROM pg_opclass oc JOIN members m ON m.classid = 'pg_opclass'::regclass AND m.objid = oc.oid
  UNION ALL
  SELECT format('opfamily %s | %s', f.opfname, pg_describe_object(d.classid, d.objid, 0))
  FROM pg_opfamily f JOIN members m ON m.classid = 'pg_opfamily'::regclass AND m.objid = f.oid
  JOIN pg_depend d ON d.refclassid = 'pg_opfamily'::regclass AND d.refobjid = f.oid
                  AND d.classid IN ('pg_amop'::regclass, 'pg_amproc'::regclass)
  UNION ALL
  -- schema
  SELECT format('schema %s | acl %s', n.nspname, n.nspacl) FROM pg_namespace n WHERE n.nspname = 'personalize'
  UNION ALL
  -- relations: kind, options, ACL, row-level security, view definitions
  SELECT format('relation %s | kind %s | options %s | acl %s | rls %s force %s | view %s', c.oid::regclass, c.relkind,
                c.reloptions, c.relacl, c.relrowsecurity, c.relforcerowsecurity, pg_get_viewdef(c.oid))
  FROM pg_class c JOIN rels r ON r.oid = c.oid
  UNION ALL
  SELECT format('column %s.%s | %s | not null %s | default %s | identity %s | generated %s | acl %s | comment %s', c.oid::regclass,
                a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid),
                a.attidentity, a.attgenerated, a.attacl, col_description(c.oid, a.attnum))
  FROM pg_class c JOIN rels r ON r.oid = c.oid JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
  UNION ALL
  SELECT format('constraint %s on %s | %s', co.conname, co.conrelid::regclass, pg_get_constraintdef(co.oid))
  FROM pg_constraint co JOIN rels r ON r.oid = co.conrelid
  UNION ALL
  SELECT format('index %s', pg_get_indexdef(i.indexrelid)) FROM pg_index i JOIN rels r ON r.oid = i.indrelid
  UNION ALL
  SELECT format('trigger %s', pg_get_triggerdef(t.oid)) FROM pg_trigger t JOIN rels r ON r.oid = t.tgrelid WHERE NOT t.tgisinternal
  UNION ALL
  SELECT format('policy %s on %s | %s | permissive %s | roles %s | using %s | check %s', p.polname, p.polrelid::regclass,
                p.polcmd, p.polpermissive, p.polroles::regrole[], pg_get_expr(p.polqual, p.polrelid),
                pg_get_expr(p.polwithcheck, p.polrelid))
  FROM pg_policy p JOIN rels r ON r.oid = p.polrelid
  UNION ALL
  SELECT format('sequence %s | %s %s %s %s %s', s.seqrelid::regclass, s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmax, s.seqcycle)
  FROM pg_sequence s JOIN rels r ON r.oid = s.seqrelid
  UNION ALL
  -- what pg_dump keeps
  SELECT format('config dump %s | %s', cfg.rel::regclass, cfg.cond)
  FROM pg_extension e, LATERAL unnest(e.extconfig, e.extcondition) AS cfg(rel, cond) WHERE e.extname = 'pg_personalize'
) all_lines
ORDER BY line COLLATE "C";
