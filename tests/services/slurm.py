"""A real single-node SLURM cluster for tests: Debian packages, plain background daemons.

``ensure_installed()`` installs the packages with apt-get (root only, skipped when present);
``SlurmCluster`` writes a private configuration under a fresh directory, starts munged,
optionally mariadb + slurmdbd (so ``sacct`` works), slurmctld and slurmd in the foreground as
children of this process, and stops exactly those PIDs again (TERM, wait, KILL).

Clients find the cluster through ``/etc/slurm/slurm.conf``: a symlink to the private config
*through* ``/proc/<slurmctld pid>/root``, so it resolves only while the controller lives. The
symlink is needed because the plugin's job step strips every ``SLURM_*`` variable (also
``SLURM_CONF``) before calling ``srun``. That it dies with the controller matters: the SLURM
executor plugin runs ``scontrol show config`` whenever ``sinfo`` is on PATH, at *every*
Snakemake start (local and dry runs too); with a config whose controller is down that costs
~10 s per start, with no config ``scontrol`` fails at once. The daemons get SIGTERM when this
process dies (``PR_SET_PDEATHSIG``), so even a SIGKILLed pytest leaves nothing behind that
slows other runs. A real SLURM config at that path is never touched (we skip instead).

The node has two fake GPUs (``gres/gpu``, character devices made with ``mknod c 1 3``), so
jobs asking for ``gpu=1`` are scheduled two at a time and get ``CUDA_VISIBLE_DEVICES`` from
SLURM.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BASE_PACKAGES = ("munge", "slurm-client", "slurmctld", "slurmd")
ACCOUNTING_PACKAGES = ("slurmdbd", "mariadb-server")
FAKE_GPUS = 2
MIN_JOB_AGE_S = 300  # finished jobs stay visible to squeue this long (plugin needs >= 3x init)
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
CLUSTER_NAME = "rlpipe"


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be installed here (not root, no apt, ...): tests skip, they don't fail."""


class SlurmStartError(RuntimeError):
    """The packages are installed but the cluster did not come up: a real failure."""


def _installed(package: str) -> bool:
    res = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
    )
    return res.returncode == 0 and res.stdout.strip() == "install ok installed"


def ensure_installed(accounting: bool) -> float:
    """Install the Debian packages unless present; return the seconds spent installing."""
    packages = BASE_PACKAGES + (ACCOUNTING_PACKAGES if accounting else ())
    if os.geteuid() != 0:
        raise SlurmUnavailable("installing a SLURM test cluster needs root")
    if shutil.which("dpkg-query") is None or shutil.which("apt-get") is None:
        raise SlurmUnavailable("no dpkg/apt-get: not a Debian-like system")
    missing = [p for p in packages if not _installed(p)]
    if not missing:
        return 0.0
    start = time.monotonic()
    own_policy = not POLICY_RC_D.exists()
    if own_policy:  # keep apt's maintainer scripts from starting daemons
        POLICY_RC_D.write_text("#!/bin/sh\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for cmd in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
        ):
            res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
            if res.returncode != 0:
                tail = (res.stdout + res.stderr)[-2000:]
                raise SlurmUnavailable(f"`{' '.join(cmd)}` failed:\n{tail}")
    finally:
        if own_policy:
            POLICY_RC_D.unlink(missing_ok=True)
    return time.monotonic() - start


def _term_when_parent_dies() -> None:
    """In the child before exec: SIGTERM it when the process that started it dies."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_hardware() -> tuple[int, int]:
    """(CPUs, RealMemory in MB) as slurmd detects them."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    fields = dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
    return int(fields["CPUs"]), int(fields["RealMemory"])


@dataclass
class SlurmCluster:
    """One controller + one node (this host, 2 fake GPUs); ``env`` points clients at it."""

    accounting: bool = False
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rlpipe-slurm-")))
    host: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.base / "etc" / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """os.environ plus SLURM_CONF (clients also find the cluster via /etc/slurm)."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    @property
    def snakemake_args(self) -> list[str]:
        """Status-check flags that make a tiny workflow finish quickly on this cluster."""
        args = ["--slurm-init-seconds-before-status-checks", "2"]
        args += ["--seconds-between-status-checks", "2"]
        args += ["--slurm-status-command", "sacct" if self.accounting else "squeue"]
        return args

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        t0 = time.monotonic()
        try:
            self._check_system_conf()
            self.base.chmod(0o755)  # munged runs as the munge user and must reach its directory
            for sub in ("etc", "log", "state", "spool", "run", "fakegpu"):
                (self.base / sub).mkdir()
            self._start_munge()
            if self.accounting:
                self._start_mariadb()
                self._start_slurmdbd()
            self._write_slurm_conf()
            self._spawn("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)])
            self._link_system_conf()
            self._wait(lambda: self._ok(["scontrol", "ping"]), "slurmctld to answer", timeout)
            self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf)])
            self._wait(self._node_idle, "the node to become idle", timeout)
            self._check_job_step()
        except BaseException:
            self.stop()
            raise
        self.timings["start_s"] = time.monotonic() - t0

    def stop(self, grace: float = 15.0) -> None:
        """Cancel jobs, then stop the daemons we started, last started first (TERM, wait, KILL)."""
        ctld = self.procs.get("slurmctld")
        if ctld is not None and ctld.poll() is None:
            with contextlib.suppress(Exception):  # best effort: the daemons must stop anyway
                ids = self._squeue_ids()
                if ids:
                    subprocess.run(["scancel", "--full", *ids], env=self.env, timeout=10)
                    self._wait(lambda: not self._squeue_ids(), "jobs to end", 10.0, must=False)
        for name in reversed(list(self.procs)):
            proc = self.procs.pop(name)
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if SYSTEM_CONF.is_symlink() and str(SYSTEM_CONF.readlink()).endswith(f"root{self.conf}"):
            SYSTEM_CONF.unlink()

    def log_tail(self, n: int = 40) -> str:
        """Last lines of every daemon log, for failure messages."""
        parts = []
        for log in sorted((self.base / "log").iterdir()):
            lines = log.read_text(errors="replace").splitlines()[-n:]
            parts.append(f"== {log.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    # -- helpers -------------------------------------------------------------------------------
    def _check_system_conf(self) -> None:
        """Refuse a real /etc/slurm/slurm.conf or a live test cluster; drop a dead one's link."""
        if not (SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink()):
            return
        if not (SYSTEM_CONF.is_symlink() and "rlpipe-slurm-" in str(SYSTEM_CONF.readlink())):
            raise SlurmUnavailable(f"{SYSTEM_CONF} is a real SLURM config: not touching it")
        if SYSTEM_CONF.exists():  # resolves through /proc/PID/root: that controller lives
            raise SlurmUnavailable(f"another test cluster is running ({SYSTEM_CONF.readlink()})")
        SYSTEM_CONF.unlink()

    def _link_system_conf(self) -> None:
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        pid = self.procs["slurmctld"].pid
        SYSTEM_CONF.symlink_to(f"/proc/{pid}/root{self.conf}")

    def _check_job_step(self) -> None:
        """``srun`` without any SLURM_* variable (as the plugin's job step calls it) works."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        res = subprocess.run(
            ["srun", "-n1", "true"], env=env, capture_output=True, text=True, timeout=60
        )
        if res.returncode != 0:
            raise SlurmStartError(f"srun failed: {res.stderr}\n{self.log_tail()}")

    def _spawn(self, name: str, cmd: list[str], user: str | None = None) -> None:
        with open(self.base / "log" / f"{name}.out", "ab") as log:  # the child keeps a copy
            self.procs[name] = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                user=user,
                start_new_session=True,  # a Ctrl-C in pytest must not hit the daemons first
                preexec_fn=_term_when_parent_dies,
            )
        time.sleep(0.2)
        if self.procs[name].poll() is not None:
            raise SlurmStartError(f"{name} exited at once:\n{self.log_tail()}")

    def _ok(self, cmd: list[str]) -> bool:
        return subprocess.run(cmd, env=self.env, capture_output=True, timeout=20).returncode == 0

    def _squeue_ids(self) -> list[str]:
        res = subprocess.run(
            ["squeue", "-h", "-t", "PENDING,RUNNING,COMPLETING", "-o", "%i"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=20,
        )
        return res.stdout.split()

    def _node_idle(self) -> bool:
        res = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%T"], env=self.env, capture_output=True, text=True
        )
        return res.stdout.strip() == "idle"

    def _wait(self, ready, what: str, timeout: float, must: bool = True) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise SlurmStartError(f"{name} died waiting for {what}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                if must:
                    raise SlurmStartError(f"timed out waiting for {what}:\n{self.log_tail()}")
                return
            time.sleep(0.25)

    def _start_munge(self) -> None:
        munge_dir = self.base / "munge"
        munge_dir.mkdir(mode=0o755)
        key = munge_dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        pw = pwd.getpwnam("munge")
        for path in (munge_dir, key):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        self.munge_socket = munge_dir / "munge.socket"
        self._spawn(
            "munged",
            [
                "munged",
                "--foreground",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--log-file={munge_dir / 'munged.log'}",
                f"--pid-file={munge_dir / 'munged.pid'}",
                f"--seed-file={munge_dir / 'munged.seed'}",
            ],
            user="munge",
        )
        self._wait(self.munge_socket.exists, "the munge socket", 20.0)

    def _start_mariadb(self) -> None:
        t0 = time.monotonic()
        data = self.base / "mysql"
        self.db_socket = self.base / "run" / "mysqld.sock"
        self.db_port = _free_port()
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                "--user=root",
                f"--datadir={data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            capture_output=True,
            check=True,
        )
        self.timings["mariadb_install_db_s"] = time.monotonic() - t0
        self._spawn(
            "mariadbd",
            [
                "mariadbd",
                "--no-defaults",
                "--user=root",
                f"--datadir={data}",
                f"--socket={self.db_socket}",
                f"--port={self.db_port}",
                "--bind-address=127.0.0.1",
                f"--pid-file={self.base / 'run' / 'mysqld.pid'}",
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=16M",
                f"--log-error={self.base / 'log' / 'mariadbd.log'}",
            ],
        )
        client = ["mariadb", "--no-defaults", f"--socket={self.db_socket}", "-uroot"]
        self._wait(lambda: self._ok([*client, "-e", "SELECT 1"]), "mariadb", 60.0)
        self.db_password = os.urandom(12).hex()
        sql = (
            f"CREATE USER 'slurm'@'%' IDENTIFIED BY '{self.db_password}';"
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'%';"
        )
        subprocess.run([*client, "-e", sql], check=True, capture_output=True)

    def _start_slurmdbd(self) -> None:
        self.dbd_port = _free_port()
        dbd_conf = self.conf.parent / "slurmdbd.conf"  # slurmdbd looks next to SLURM_CONF
        dbd_conf.write_text(
            "\n".join(
                [
                    "AuthType=auth/munge",
                    f"AuthInfo=socket={self.munge_socket}",
                    f"DbdHost={self.host}",
                    "DbdAddr=127.0.0.1",
                    f"DbdPort={self.dbd_port}",
                    "SlurmUser=root",
                    f"LogFile={self.base / 'log' / 'slurmdbd.log'}",
                    f"PidFile={self.base / 'run' / 'slurmdbd.pid'}",
                    "StorageType=accounting_storage/mysql",
                    "StorageHost=127.0.0.1",
                    f"StoragePort={self.db_port}",
                    "StorageUser=slurm",
                    f"StoragePass={self.db_password}",
                    "StorageLoc=slurm_acct_db",
                    "",
                ]
            )
        )
        dbd_conf.chmod(0o600)
        self._spawn("slurmdbd", ["slurmdbd", "-D"])
        self._wait(lambda: self._port_open(self.dbd_port), "slurmdbd", 60.0)

    @staticmethod
    def _port_open(port: int) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    def _write_slurm_conf(self) -> None:
        cpus, mem_mb = _node_hardware()
        gpus = self.base / "fakegpu"
        for i in range(FAKE_GPUS):
            os.mknod(gpus / f"gpu{i}", 0o666 | 0o020000, os.makedev(1, 3))  # like /dev/null
        b = self.base
        if self.accounting:
            accounting = [
                "AccountingStorageType=accounting_storage/slurmdbd",
                "AccountingStorageHost=127.0.0.1",
                f"AccountingStoragePort={self.dbd_port}",
                f"AccountingStoragePass={self.munge_socket}",  # munge socket for slurmdbd
                "JobAcctGatherType=jobacct_gather/linux",
            ]
        else:
            accounting = ["AccountingStorageType=accounting_storage/none"]
        lines = [
            f"ClusterName={CLUSTER_NAME}",
            f"SlurmctldHost={self.host}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "AuthType=auth/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={b / 'state'}",
            f"SlurmdSpoolDir={b / 'spool'}",
            f"SlurmctldPidFile={b / 'run' / 'slurmctld.pid'}",
            f"SlurmdPidFile={b / 'run' / 'slurmd.pid'}",
            f"SlurmctldLogFile={b / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={b / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU_Memory",
            "SchedulerType=sched/backfill",
            "MailProg=/bin/true",
            "ReturnToService=2",
            f"MinJobAge={MIN_JOB_AGE_S}",
            "GresTypes=gpu",
            "SlurmdParameters=config_overrides",
            *accounting,
            f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} "
            f"Gres=gpu:{FAKE_GPUS} State=UNKNOWN",
            "PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
        self.conf.write_text("\n".join(lines))
        last = FAKE_GPUS - 1
        (self.conf.parent / "gres.conf").write_text(
            f"NodeName={self.host} Name=gpu File={gpus}/gpu[0-{last}]\n"
        )
