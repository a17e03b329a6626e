"""Avro schemas as contracts: the registry, its watched cache, schema files and the CI gate."""
