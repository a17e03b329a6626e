"""Avro schema language under the codec and the registry: type graph, compatibility, identity."""
