"""A sweep from its config: validation (all errors at once) and the runs it expands to."""
