-- A version is its whole schema, not its fingerprint. Until now schema_versions held only a
-- fingerprint, and at most one version of a subject could have a given fingerprint, so a
-- schema that differed from an earlier version only in defaults, aliases, docs or logical
-- types was answered "already registered" and its compatibility checks saw the earlier
-- schema instead. Each version now keeps its own schema JSON; `schemas` stays the writer of
-- each fingerprint (the JSON first registered with it, what bodies carrying it decode with).
--
-- Stored versions get the JSON they were checked against, the only one the record kept, so
-- an upgraded registry decides exactly as before for them and correctly from then on.
ALTER TABLE schema_versions ADD COLUMN IF NOT EXISTS schema_json text;

UPDATE schema_versions v SET schema_json = s.schema_json
    FROM schemas s
    WHERE s.fingerprint = v.fingerprint AND v.schema_json IS NULL;

ALTER TABLE schema_versions ALTER COLUMN schema_json SET NOT NULL;

-- Versions of one subject may now share a fingerprint (v2 adds a default to v1's field).
ALTER TABLE schema_versions DROP CONSTRAINT IF EXISTS schema_versions_subject_fingerprint_key;
