"""Behaviour cloning from recorded replays: params (hyper-parameters), train (one segment)."""
