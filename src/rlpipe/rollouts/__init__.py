"""Greedy episodes of a checkpoint: its evaluation, and recording them as a replay dataset."""
