"""Replay datasets: the episode file format, fetching from and publishing to rclone remotes."""
