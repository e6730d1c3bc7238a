"""Remote storage through rclone: a client for one remote path and dataset manifests."""

from rlpipe.storage.rclone import RcloneRemote, RemoteError, RemoteNotFound, find_rclone

__all__ = ["RcloneRemote", "RemoteError", "RemoteNotFound", "find_rclone"]
