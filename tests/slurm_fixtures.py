"""Session fixture: a real single-node SLURM cluster (see services/slurm.py).

Import into conftest.py with ``from slurm_fixtures import slurm_cluster  # noqa: F401``.
Skips when SLURM cannot be installed (not root, no apt), unless RLPIPE_REQUIRE_SLURM=1 (CI),
where that is a failure. Set RLPIPE_SLURM_ACCOUNTING=1 to also run mariadb + slurmdbd so that
``sacct`` works (slower start, same results).
"""

import os
import shutil
import time

import pytest

from services.slurm import SlurmCluster, SlurmStartError, SlurmUnavailable, ensure_installed


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running cluster; ``.env`` (with SLURM_CONF) must be passed to every SLURM client."""
    accounting = os.environ.get("RLPIPE_SLURM_ACCOUNTING") == "1"
    try:
        install_s = ensure_installed(accounting)
    except SlurmUnavailable as exc:
        if os.environ.get("RLPIPE_REQUIRE_SLURM") == "1":
            pytest.fail(f"RLPIPE_REQUIRE_SLURM=1 but SLURM is unavailable: {exc}")
        pytest.skip(f"no SLURM test cluster: {exc}")
    cluster = SlurmCluster(accounting=accounting)
    cluster.timings["install_s"] = install_s
    try:
        cluster.start()
    except SlurmUnavailable as exc:
        shutil.rmtree(cluster.base, ignore_errors=True)
        pytest.skip(f"no SLURM test cluster: {exc}")
    except SlurmStartError as exc:
        shutil.rmtree(cluster.base, ignore_errors=True)
        pytest.fail(f"SLURM test cluster did not start: {exc}")
    try:
        yield cluster
    finally:
        t0 = time.monotonic()
        cluster.stop()
        cluster.timings["stop_s"] = time.monotonic() - t0
        print(f"\nSLURM test cluster timings: {cluster.timings}")
        shutil.rmtree(cluster.base, ignore_errors=True)
