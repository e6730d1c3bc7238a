"""The run tree's files: paths (layout), atomic writes, integrity checks, checkpoints,
telemetry, and the span of steps one segment trains."""
