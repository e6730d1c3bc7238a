"""Tabular Q-learning on EnvPool classic-control tasks, with numba update kernels.

indexer: observations -> table rows; kernel: numba step kernels; replay: prioritised replay;
qtable: the per-segment ``.npz`` artifact; train: one training segment; evaluate: greedy eval.
"""
