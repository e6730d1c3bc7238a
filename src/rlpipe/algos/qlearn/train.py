"""Tabular Q-learning on EnvPool, trained one segment (one ``.npz`` artifact) at a time.

Per vector step over N envs: epsilon-greedy actions from the table, one EnvPool step, one
sequential numba TD update per transition, then optional prioritised-replay updates.
EnvPool autoresets on the step after a done: that step's transition (terminal obs -> reset
obs, reward 0) is junk and never learned from. Truncation bootstraps, termination does not.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from rlpipe.algos.qlearn import kernel, qtable
from rlpipe.algos.qlearn.indexer import build_indexer
from rlpipe.algos.qlearn.params import METRICS, QLearnParams
from rlpipe.algos.qlearn.replay import PrioritizedReplay
from rlpipe.envs import make_vec_env
from rlpipe.runtime.gpu_slots import placement
from rlpipe.runtime.seeding import derive_seed
from rlpipe.runtime.watchdog import run_watched
from rlpipe.runtree.span import Segment
from rlpipe.runtree.telemetry import TelemetryWriter

RNG_STREAM = 1  # derive_seed(seed, 0, RNG_STREAM): the agent's RNG, distinct from the envs'


def epsilon_at(hp: QLearnParams, epsilon_step: int) -> float:
    """Linear schedule from epsilon_start to epsilon_end over epsilon_decay_steps env steps."""
    frac = min(1.0, epsilon_step / max(1, hp.epsilon_decay_steps))
    return hp.epsilon_start + frac * (hp.epsilon_end - hp.epsilon_start)


def initial_table(env_id: str, seed: int, hp: QLearnParams, init_path, warm_start: bool, envs):
    """Fresh table, a previous segment's (continue), or another run's final one (warm start)."""
    obs_dims, n_actions = envs.observation_space.shape[0], int(envs.action_space.n)
    if init_path is not None:
        table = qtable.load(init_path, obs_dims, n_actions)
        if table.env_id != env_id:
            raise ValueError(f"{init_path}: a {table.env_id} table, this run is {env_id}")
        if not warm_start:
            return table
        if not table.indexer.fitted:
            raise ValueError(f"{init_path}: its adaptive indexer was never fitted")
        indexer, q = table.indexer, table.q
    else:
        space = envs.observation_space
        indexer = build_indexer(hp, env_id, space.low, space.high)
        q = np.zeros((indexer.n_rows, n_actions), np.float64)
    replay = None
    if hp.replay_size > 0:
        replay = PrioritizedReplay(hp.replay_size, hp.replay_alpha).arrays
    rng = np.random.default_rng(derive_seed(seed, 0, RNG_STREAM))
    return qtable.QTable(
        env_id=env_id,
        q=q,
        visits=np.zeros(indexer.n_rows, np.int64),
        indexer=indexer,
        rng_state=rng.bit_generator.state,
        global_step=0,
        epsilon_step=0,
        episodes=0,
        updates=0,
        hparams=dataclasses.asdict(hp),
        replay=replay,
    )


def train_segment(
    segment: Segment,
    hp: QLearnParams,
    ckpt_out: str | Path,
    telemetry_out: str | Path,
    prev_ckpt: str | Path | None = None,
    warm_start: str | Path | None = None,
    threads: int = 1,
    heartbeat=None,
) -> dict:
    """Train env steps (segment.start_step, segment.end_step] and write ``ckpt_out`` (the
    same signature as every algorithm's ``train_segment``).

    ``prev_ckpt`` continues a run exactly (RNG, epsilon position, indexer, counters,
    replay); ``warm_start`` is another experiment's final table: Q values and indexer are
    kept, steps, epsilon, counters and RNG start afresh. Neither: a fresh start at step 0.
    """
    if prev_ckpt is not None and warm_start is not None:
        raise ValueError("a segment continues its run or warm-starts a new one, not both")
    env_id, seed = segment.env_id, segment.seed
    start_step, end_step = segment.start_step, segment.end_step
    init_path = prev_ckpt if prev_ckpt is not None else warm_start
    num_envs, lr, gamma = hp.num_envs, hp.learning_rate, hp.gamma
    replay_batch, replay_batches = hp.replay_batch, hp.replay_updates_per_step
    if (end_step - start_step) % num_envs or end_step <= start_step:
        raise ValueError(
            f"segment ({start_step}, {end_step}] is not a positive multiple of num_envs={num_envs}"
        )
    if prev_ckpt is None and start_step != 0:
        raise ValueError(f"segment starts at {start_step} but has no previous table")
    envs = make_vec_env(env_id, num_envs, derive_seed(seed, start_step), threads)
    table = initial_table(env_id, seed, hp, init_path, warm_start is not None, envs)
    if table.global_step != start_step:
        raise ValueError(
            f"{init_path}: ends at step {table.global_step}, segment starts at {start_step}"
        )
    rng = np.random.default_rng()
    rng.bit_generator.state = table.rng_state
    q, indexer = table.q, table.indexer
    replay = None
    if table.replay is not None:
        try:
            replay = PrioritizedReplay(hp.replay_size, hp.replay_alpha, table.replay)
        except ValueError as err:
            raise ValueError(f"{init_path}: {err}") from None

    # Per-env state, shapes (N,)
    ep_return = np.zeros(num_envs, np.float64)
    ep_length = np.zeros(num_envs, np.int64)
    junk = np.zeros(num_envs, np.bool_)  # this env's next transition is EnvPool's reset step
    td = np.zeros(num_envs, np.float64)
    stats = np.zeros(kernel.N_STATS)  # per log interval, see kernel.TD_ABS_SUM etc.
    obs, _ = envs.reset()  # (N, D) float32
    log_every = max(1, hp.log_every_steps // num_envs)
    n_iters = (end_step - start_step) // num_envs
    t0 = t_log = time.perf_counter()
    updates_at_log = table.updates

    static = {"env_id": env_id, "seed": seed, "algo": "qlearn", **placement()}
    with TelemetryWriter(telemetry_out, METRICS, **static) as tel:
        for it in range(n_iters):
            if not indexer.fitted:
                indexer.collect(obs)
            learning = indexer.fitted
            epsilon = epsilon_at(hp, table.epsilon_step) if learning else 1.0
            u = rng.random((2, num_envs))  # (explore?, which random action)
            rows = indexer.rows(obs) if learning else np.zeros(num_envs, np.int64)
            actions = kernel.epsilon_greedy(q, rows, u[0], u[1], epsilon)
            next_obs, reward, terminated, truncated, _ = envs.step(actions)
            reward = reward.astype(np.float64)
            table.global_step += num_envs
            if learning:
                next_rows = indexer.rows(next_obs)
                table.updates += kernel.online_step(
                    q, table.visits, rows, actions, reward, next_rows, terminated, junk,
                    lr, gamma, td, stats,
                )  # fmt: skip
                table.epsilon_step += num_envs
                if replay is not None:
                    replay.add(rows, actions, reward, next_rows, ~terminated, ~junk)
                    n = replay.train(q, replay_batch, replay_batches, lr, gamma, rng, stats)
                    table.updates += n
            kernel.track_episodes(reward, terminated, truncated, junk, ep_return, ep_length, stats)
            junk = terminated | truncated
            obs = next_obs
            if heartbeat:
                heartbeat()
            if (it + 1) % log_every == 0 or it + 1 == n_iters:
                now = time.perf_counter()
                metrics = _interval_metrics(stats, table, epsilon, replay)
                metrics["charts/SPS"] = (table.global_step - start_step) / (now - t0)
                metrics["charts/updates_per_second"] = (table.updates - updates_at_log) / (
                    now - t_log
                )
                tel.log(table.global_step, **metrics)
                stats[:] = 0.0
                t_log, updates_at_log = now, table.updates
        table.rng_state = rng.bit_generator.state
        table.hparams = dataclasses.asdict(hp)
        qtable.save(ckpt_out, table)
    envs.close()
    elapsed = time.perf_counter() - t0
    return {
        "global_step": table.global_step,
        "sps": (table.global_step - start_step) / elapsed,
        "episodes": table.episodes,
        "coverage": table.coverage,
    }


def segment_job(
    env: str,
    seed: int,
    start: int,
    end: int,
    hparams: dict,
    ckpt: str,
    telemetry: str,
    prev: str | None = None,
    init: str | None = None,
    threads: int = 1,
    stall_timeout: float = 600,
) -> None:
    """One Q-learning segment as a job (plain-data arguments, see ``rlpipe.warm.worker``)."""
    segment = Segment(env, seed, start, end)
    run_watched(
        lambda beat: train_segment(
            segment, QLearnParams(**hparams), ckpt, telemetry, prev, init, threads, beat
        ),
        stall_timeout, ckpt,
    )  # fmt: skip


def _interval_metrics(stats, table, epsilon, replay) -> dict:
    """Telemetry of one log interval; episode counters are folded into ``table`` here."""
    n_episodes = int(stats[kernel.EP_COUNT])
    table.episodes += n_episodes
    metrics = {
        "charts/epsilon": epsilon,
        "charts/coverage": table.coverage,
        "charts/episodes": table.episodes,
        "charts/updates": table.updates,
    }
    if stats[kernel.TD_COUNT]:
        metrics["losses/td_error_mean"] = stats[kernel.TD_ABS_SUM] / stats[kernel.TD_COUNT]
    if n_episodes:
        metrics["charts/episodic_return"] = stats[kernel.EP_RETURN_SUM] / n_episodes
        metrics["charts/episodic_length"] = stats[kernel.EP_LENGTH_SUM] / n_episodes
    if replay is not None:
        metrics["replay/size"] = replay.size
        if replay.size:
            metrics["replay/priority_mean"], metrics["replay/priority_max"] = (
                replay.priority_stats()
            )
    return metrics
