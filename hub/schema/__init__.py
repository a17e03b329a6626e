"""Avro schemas as contracts: the registry, its watched cache, compatibility rules, the CI gate."""
