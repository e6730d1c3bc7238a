"""Shards (rlpipe.remote.shards): units, balanced and stable assignment, owner records."""

from __future__ import annotations

import json

import pytest
import yaml

from rlpipe.remote import shards
from rlpipe.storage.rclone import RemoteNotFound
from rlpipe.sweep import config as rlconfig
from rlpipe.sweep.runs import ConfigError, expand_runs

from pipeline import REPO

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def demo():
    return rlconfig.load(REPO / "config/config.yaml", SCHEMA)


def test_runs_that_read_each_other_are_one_unit():
    """The demo's replay chain (expert PPO run -> recorded dataset -> BC -> PPO from BC) is
    one unit; independent runs are units of their own."""
    config = demo()
    runs = expand_runs(config)
    groups = shards.units(runs, config["datasets"])
    record = config["datasets"]["cartpole-expert"]["record"]
    source = (record["experiment"], record["env"], record["run_seed"])
    chain = next(g for g in groups if source in g)
    assert {k[0] for k in chain} == {record["experiment"], "bc-cartpole", "ppo-from-bc"}
    assert sum(map(len, groups)) == len(runs)
    assert all(len(g) == 1 for g in groups if g is not chain)


def test_assignment_is_longest_first_and_stable_when_runs_are_added():
    keys = [("a", "E-v1", s) for s in range(1, 6)]
    weight = dict(zip(keys, [50.0, 40.0, 30.0, 20.0, 10.0], strict=True))
    groups = [[k] for k in keys]
    first = shards.assign(groups, weight, 2, {})
    # 50 -> 1; 40 -> 2; 30 -> 2 (load 40 < 50); 20 -> 1; 10 -> 2 (70 vs 70: lowest index 1)
    assert first == {
        "a/E-v1/seed1": 1,
        "a/E-v1/seed2": 2,
        "a/E-v1/seed3": 2,
        "a/E-v1/seed4": 1,
        "a/E-v1/seed5": 1,
    }
    new = ("b", "E-v1", 1)
    again = shards.assign([*groups, [new]], {**weight, new: 100.0}, 2, first)
    assert {k: again[k] for k in first} == first, "no run changes shard"
    assert again["b/E-v1/seed1"] == 2  # loads 80 / 70: the lighter shard


def test_a_stored_split_of_another_size_is_refused():
    config = demo()
    stored = shards.Assignment(3, {})
    with pytest.raises(ConfigError, match=r"split into 3 shards .* use shard=I/3"):
        shards.plan_assignment(config, 2, stored, "runs")


@pytest.mark.parametrize("value", ["0/3", "4/3", "2", "a/b", "2/0"])
def test_bad_shard_names_the_key(value):
    with pytest.raises(ConfigError, match=r"^shard: "):
        shards.Shard.parse(value)


def test_schema_checks_the_shard_key():
    config = yaml.safe_load((REPO / "tests/configs/sweep.yaml").read_text())
    config["shard"] = "two of three"
    with pytest.raises(ConfigError, match=r"- shard: "):
        rlconfig.validate(config, SCHEMA)


class FakeRemote:
    """The three calls an Owner makes, on a dict (one shared 'bucket')."""

    def __init__(self):
        self.files: dict[str, str] = {}

    def cat(self, rel):
        if rel not in self.files:
            raise RemoteNotFound("cat", rel, "not found")
        return self.files[rel]

    def replace_file(self, local, rel):
        with open(local) as fh:
            self.files[rel] = fh.read()

    def delete(self, rel):
        self.files.pop(rel, None)

    def path(self, rel):
        return f"bucket:{rel}"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.now += s


def owner(remote, clock, workdir, wait_s=0.0):
    settings = shards.OwnerSettings(timeout_s=60, wait_s=wait_s, settle_s=1)
    return shards.Owner(remote, shards.Shard(2, 3), workdir, settings, clock=clock)


def test_a_live_foreign_owner_is_refused_and_an_expired_one_taken_over(tmp_path):
    remote, clock = FakeRemote(), Clock()
    first = owner(remote, clock, tmp_path / "pod-a")
    first.claim(sleep=clock.sleep)
    record = json.loads(remote.files["/".join([".rlpipe/owners", "shard-2-of-3.json"])])
    assert record["owner"].endswith("pod-a") and record["shard"] == "2/3"

    second = owner(remote, clock, tmp_path / "pod-b")
    clock.now += 30  # heartbeat 30 s old < 60 s
    with pytest.raises(shards.ShardBusy, match=r"shard 2/3 is owned by a live pod: .*pod-a"):
        second.claim(sleep=clock.sleep)

    clock.now += 31  # expired: the dead pod's shard is taken over
    second.claim(sleep=clock.sleep)
    assert json.loads(remote.files[second.rel])["run_id"] == second.run_id
    first.release()  # no longer its record: left alone
    assert second.rel in remote.files
    second.release()
    assert second.rel not in remote.files


def test_a_claim_waits_for_a_heartbeat_to_expire(tmp_path):
    remote, clock = FakeRemote(), Clock()
    owner(remote, clock, tmp_path / "dead").claim(sleep=clock.sleep)
    lines = []
    waiting = owner(remote, clock, tmp_path / "new", wait_s=120)
    waiting.claim(say=lines.append, sleep=clock.sleep)
    assert lines and "waiting for its heartbeat to expire" in lines[0]
    assert json.loads(remote.files[waiting.rel])["run_id"] == waiting.run_id
    assert 1060 <= clock.now <= 1000 + 60 + 15 + 2  # within one poll of expiry


def test_of_two_simultaneous_claims_one_refuses(tmp_path):
    """Both find no owner and write; the read-back after settle_s tells who won."""
    remote, clock = FakeRemote(), Clock()
    a, b = owner(remote, clock, tmp_path / "a"), owner(remote, clock, tmp_path / "b")

    def sleep_while_b_writes(s):
        b._write()  # b's write lands between a's write and a's read-back
        clock.sleep(s)

    with pytest.raises(shards.ShardBusy):
        a.claim(sleep=sleep_while_b_writes)
    assert json.loads(remote.files[b.rel])["run_id"] == b.run_id


def test_restarting_in_the_same_directory_is_no_takeover(tmp_path):
    remote, clock = FakeRemote(), Clock()
    owner(remote, clock, tmp_path / "pod").claim(sleep=clock.sleep)
    again = owner(remote, clock, tmp_path / "pod")  # the same pod's next run, killed before
    again.claim(sleep=clock.sleep)
    assert json.loads(remote.files[again.rel])["run_id"] == again.run_id


def test_status_table_shows_every_shard():
    sweep = shards.Assignment(3, {"a/E-v1/seed1": 1, "a/E-v1/seed2": 2, "a/E-v1/seed3": 3})
    owners = {2: {"owner": "pod-b:/w", "heartbeat": 990.0}, 3: {"owner": "x", "heartbeat": 0}}
    durable = {"a/E-v1/seed1": 3, "a/E-v1/seed2": 1}
    totals = dict.fromkeys(sweep.runs, 3)
    table = shards.status_table(sweep, owners, durable, totals, 60, 1000.0)
    lines = table.splitlines()
    assert lines[1].split()[:4] == ["1/3", "1", "3", "/"] and lines[1].endswith("DONE")
    assert "pod-b:/w" in lines[2] and "10s ago" in lines[2] and lines[2].endswith("RUNNING")
    assert lines[3].endswith("OWNER LOST")


class Replacing:
    """A remote whose file reads, in turn, as each of ``reads`` (None: not found)."""

    def __init__(self, *reads):
        self.reads, self.calls = list(reads), 0

    def cat(self, rel):
        self.calls += 1
        text = self.reads.pop(0) if self.reads else self.last
        self.last = text
        if text is None:
            raise RemoteNotFound("cat", rel, "not found")
        return text


def test_a_file_read_while_a_pod_replaces_it_is_read_again(monkeypatch):
    """rclone's WebDAV server deletes the old file before it moves the new one in: a reader
    then finds no file, or rclone cat prints nothing and succeeds. A 3-pod test once failed
    on that ("not a shard assignment (Expecting value ...)")."""
    monkeypatch.setattr(shards.time, "sleep", lambda s: None)
    remote = Replacing("", None, '{"a": 1}')
    assert shards.read_replaced(remote, shards.ASSIGNMENT_REL) == '{"a": 1}'
    assert remote.calls == 3
    missing = Replacing(None)
    with pytest.raises(RemoteNotFound):
        shards.read_replaced(missing, shards.ASSIGNMENT_REL)
    assert missing.calls == 4  # about 0.3 s in all for a file that is really absent
    assert shards.read_replaced(Replacing(""), shards.ASSIGNMENT_REL) == ""  # empty stays empty
