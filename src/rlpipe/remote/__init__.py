"""The durable remote: mirror of outputs and provenance, shards and their owners."""
