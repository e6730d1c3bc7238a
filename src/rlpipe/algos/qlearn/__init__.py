"""Tabular Q-learning on EnvPool classic-control tasks, with numba update kernels.

params: hyper-parameters; indexer: observations -> table rows; kernel: numba step kernels;
replay: prioritised replay; qtable: the per-segment ``.npz`` artifact; train: one segment.
"""
