"""Exploration by curiosity: an autoencoder's reconstruction error as intrinsic reward in a gridworld.

The world is a square of ``rooms × rooms`` rooms of ``room × room`` cells, walled off from each
other with one door in the middle of each wall (4 × 4 rooms of 3 × 3 give 15 × 15 cells); the agent
starts in the top-left corner and moves up, down, left or right (into a wall: it stays). It is
deterministic. An observation is the one-hot vector of the agent's cell.

The curious agent keeps the plain AE (``"ae"``, an MLP on the one-hot vector) trained on the cells
it has visited (its replay buffer), through the shared :class:`~shared.trainer.Trainer`: created
once with ``run_dir=None``, it is given the buffer as a :class:`TensorItems` and fitted a few steps
further every ``train_every`` moves. Novel cells reconstruct badly, so the AE's error of a cell's
observation is the intrinsic reward for entering it, and the agent plans on that reward map with the
gridworld's (known, deterministic) moves: ``horizon`` rounds of value iteration, then ε-greedy on
the action values, ties broken at random (``--horizon 1`` is the plain one-step lookahead, which
dithers once the cells around it are all familiar). A random agent walks for the same number of
moves. Both run for several seeds.

Numbers: distinct cells visited (mean ± std over seeds) for both, at the end and after a quarter
and half of the moves. Figure: visitation heat maps of both agents, the AE's error map after a
fifth of the moves, and distinct cells visited against moves.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import TensorItems
from ..errors import UserError
from ..models.ae import AEConfig
from ..registry import build
from ..trainer import TrainConfig, Trainer, seed_everything
from .base import Use, register_use

ACTIONS = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])  # up, down, left, right


@dataclass(frozen=True)
class GridWorld:
    """Rooms in a square grid. ``walls`` (side, side) bool; cells are indexed ``row * side + col``."""

    walls: np.ndarray
    start: int = 0

    @classmethod
    def rooms(cls, rooms: int = 4, room: int = 3) -> "GridWorld":
        """``rooms × rooms`` rooms of ``room × room`` cells, one door in the middle of every inner wall."""
        if rooms < 1 or room < 1:
            raise UserError(f"the gridworld needs at least 1 room of at least 1 cell, not rooms={rooms}, room={room}")
        side = rooms * room + rooms - 1
        walls = np.zeros((side, side), dtype=bool)
        lines = [k * (room + 1) - 1 for k in range(1, rooms)]
        walls[lines, :] = True
        walls[:, lines] = True
        for line in lines:
            for k in range(rooms):
                door = k * (room + 1) + room // 2
                walls[line, door] = walls[door, line] = False
        return cls(walls)

    @property
    def side(self) -> int:
        return self.walls.shape[0]

    @property
    def cells(self) -> int:
        return self.walls.size

    @property
    def free_cells(self) -> int:
        return int((~self.walls).sum())

    def move(self, cell: int, action: int) -> int:
        """The cell after ``action`` (0 up, 1 down, 2 left, 3 right); bumping into a wall stays put."""
        r, c = divmod(cell, self.side)
        r2, c2 = r + ACTIONS[action][0], c + ACTIONS[action][1]
        if not (0 <= r2 < self.side and 0 <= c2 < self.side) or self.walls[r2, c2]:
            return cell
        return int(r2 * self.side + c2)

    def transitions(self) -> np.ndarray:
        """(side², 4) int: the cell each action leads to from each cell."""
        return np.array([[self.move(c, a) for a in range(4)] for c in range(self.cells)])

    def observe(self, cells: np.ndarray | list[int]) -> torch.Tensor:
        """One-hot observations (len(cells), side²) float in {0, 1}."""
        return torch.nn.functional.one_hot(torch.as_tensor(np.asarray(cells), dtype=torch.long), self.cells).float()


@dataclass
class ExplorationConfig:
    rooms: int = field(default=4, metadata={"help": "rooms per side of the gridworld"})
    room: int = field(default=3, metadata={"help": "cells per side of a room"})
    env_steps: int = field(default=1000, metadata={"help": "moves per agent and seed"})
    seeds: int = field(default=5, metadata={"help": "seeds per agent (0, 1, ...)"})
    epsilon: float = field(default=0.1, metadata={"help": "the curious agent's chance of a random move"})
    train_every: int = field(default=5, metadata={"help": "moves between AE updates (the AE trains --steps optimiser steps over the whole episode)"})
    buffer: int = field(default=1000, metadata={"help": "the replay buffer holds the last this many visited cells"})
    horizon: int = field(default=20, metadata={"help": "moves the agent plans ahead on the AE's error map (1: one-step lookahead)"})
    gamma: float = field(default=0.9, metadata={"help": "discount of intrinsic reward over the planning horizon"})
    #: the curious agent's AE, an MLP on the one-hot cell (input_shape: the grid's cells; widths: one layer of hidden)
    model: AEConfig = field(default_factory=AEConfig, metadata={"derived": ("input_shape", "widths")})
    hidden: int = field(default=128, metadata={"help": "the AE's hidden layer size"})


@dataclass
class Episode:
    """One agent's walk: ``visits`` (side, side) counts, ``first`` (side, side) the move of the first
    visit (0: the start, -1: never), ``distinct`` (env_steps,) distinct cells after each move."""

    visits: np.ndarray
    first: np.ndarray
    distinct: np.ndarray


def _walk(env: GridWorld, steps: int, choose) -> Episode:
    cell = env.start
    first = np.full(env.cells, -1, dtype=np.int64)
    first[cell] = 0
    visits = np.zeros(env.cells, dtype=np.int64)
    visits[cell] += 1
    distinct = np.zeros(steps, dtype=np.int64)
    for t in range(steps):
        cell = env.move(cell, choose(t, cell))
        visits[cell] += 1
        if first[cell] < 0:
            first[cell] = t + 1
        distinct[t] = (first >= 0).sum()
    shape = (env.side, env.side)
    return Episode(visits.reshape(shape), first.reshape(shape), distinct)


def random_episode(env: GridWorld, steps: int, seed: int) -> Episode:
    """Uniformly random moves."""
    rng = np.random.default_rng(seed)
    return _walk(env, steps, lambda t, cell: int(rng.integers(4)))


@torch.no_grad()
def error_map(model, env: GridWorld) -> np.ndarray:
    """The AE's reconstruction error of every cell's observation, (side²,)."""
    device = next(model.parameters()).device
    model.eval()
    return model.score(env.observe(np.arange(env.cells)).to(device)).float().cpu().numpy()


def action_values(nxt: np.ndarray, reward: np.ndarray, horizon: int, gamma: float) -> np.ndarray:
    """Q (cells, 4): the best discounted intrinsic reward over the next ``horizon`` moves, where ``nxt``
    (cells, 4) is :meth:`GridWorld.transitions` and ``reward[c]`` is earned on entering cell ``c``.
    ``horizon=1`` is the one-step lookahead ``reward[nxt]``."""
    value = np.zeros(len(reward))
    for _ in range(horizon - 1):
        value = (reward[nxt] + gamma * value[nxt]).max(1)
    return reward[nxt] + gamma * value[nxt]


def model_config(cfg: ExplorationConfig, env: GridWorld) -> AEConfig:
    """The curious agent's AE: ``cfg.model`` on one-hot cells of ``env``, one hidden layer of ``hidden``."""
    return dataclasses.replace(cfg.model, input_shape=(env.cells,), widths=(cfg.hidden,))


def curious_episode(env: GridWorld, cfg: ExplorationConfig, train: TrainConfig, seed: int, snapshot: int | None = None) -> tuple[Episode, np.ndarray]:
    """The curious agent for ``cfg.env_steps`` moves; returns its episode and the AE's error map
    (side, side) as it stood at move ``snapshot`` (None: at the end).

    Every ``train_every`` moves the AE is fitted on the last ``buffer`` visited cells up to optimiser
    step ``steps · t / env_steps``, and the action values are replanned on its new error map."""
    if cfg.train_every < 1 or cfg.horizon < 1 or cfg.buffer < train.batch_size:
        raise UserError(f"train_every and horizon must be >= 1 and buffer ({cfg.buffer}) at least one batch ({train.batch_size})")
    rng = np.random.default_rng(seed)
    tc = dataclasses.replace(train, seed=seed, progress=False)
    seed_everything(seed)
    model = build("ae", model_config(cfg, env))
    trainer = Trainer(model, TensorItems(env.observe([env.start])), tc, run_dir=None)
    history: list[int] = []
    nxt = env.transitions()
    state = {"error": error_map(trainer.model, env)}
    state["q"] = action_values(nxt, state["error"], cfg.horizon, cfg.gamma)

    def choose(t: int, cell: int) -> int:
        history.append(cell)
        target = train.steps * (t + 1) // cfg.env_steps
        if t % cfg.train_every == 0 and len(history) >= train.batch_size and target > trainer.step:
            trainer.dataset = TensorItems(env.observe(history[-cfg.buffer :]))
            trainer.fit(target)
            state["error"] = error_map(trainer.model, env)
            state["q"] = action_values(nxt, state["error"], cfg.horizon, cfg.gamma)
        if t == snapshot:
            state["snapshot"] = state["error"]
        if rng.random() < cfg.epsilon:
            return int(rng.integers(4))
        q = state["q"][cell]
        return int(rng.choice(np.flatnonzero(q >= q.max() * (1 - 1e-6))))

    episode = _walk(env, cfg.env_steps, choose)
    return episode, state.get("snapshot", state["error"]).reshape(env.side, env.side)


def _stats(values: np.ndarray, per_seed: bool = True) -> dict[str, Any]:
    """Mean and (population) std over seeds, and the values per seed."""
    out: dict[str, Any] = {"mean": float(values.mean()), "std": float(values.std())}
    return out | {"per_seed": [int(v) for v in values]} if per_seed else out


@register_use
class Exploration(Use):
    name = "exploration"
    summary = "curiosity by AE reconstruction error in a gridworld of rooms, against a random walk"
    config_cls = ExplorationConfig
    default_train = {"steps": 2000, "batch_size": 32, "lr": 1e-2, "lr_schedule": "constant"}

    def _results(self, run: Path) -> Path:
        return Path(run) / "runs" / "episodes.npz"

    def train(self, cfg: ExplorationConfig, train: TrainConfig, run: Path, resume: bool = False) -> None:
        path = self._results(run)
        if path.exists() and not resume:
            raise UserError(f"{path} already holds episodes; pass --resume to keep them or choose another --run")
        if path.exists():
            return
        if cfg.seeds < 1 or cfg.env_steps < 1:
            raise UserError("seeds and env_steps must be at least 1")
        env = GridWorld.rooms(cfg.rooms, cfg.room)
        curious, random_, errors = [], [], []
        for seed in range(cfg.seeds):
            ep, err = curious_episode(env, cfg, train, seed, snapshot=cfg.env_steps // 5)
            curious.append(ep)
            errors.append(err)
            random_.append(random_episode(env, cfg.env_steps, seed))
            print(f"seed {seed}: curious {ep.distinct[-1]} distinct cells, random {random_[-1].distinct[-1]} (of {env.free_cells})")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name("episodes.tmp.npz")
        np.savez_compressed(
            tmp,
            walls=env.walls,
            curious_visits=np.stack([e.visits for e in curious]),
            curious_first=np.stack([e.first for e in curious]),
            random_first=np.stack([e.first for e in random_]),
            snapshot_move=np.array(cfg.env_steps // 5),
            curious_distinct=np.stack([e.distinct for e in curious]),
            random_visits=np.stack([e.visits for e in random_]),
            random_distinct=np.stack([e.distinct for e in random_]),
            curious_error_snapshot=np.stack(errors),
        )
        tmp.replace(path)

    def _load(self, run: Path) -> dict[str, np.ndarray]:
        path = self._results(run)
        if not path.is_file():
            raise UserError(f"{path} does not exist; run 'ae train exploration' first (same --run)")
        with np.load(path) as f:
            return dict(f)

    def evaluate(self, cfg: ExplorationConfig, run: Path) -> dict[str, Any]:
        r = self._load(run)
        moves = r["curious_distinct"].shape[1]
        early = sorted({max(1, moves // 4), max(1, moves // 2)})
        return {
            "gridworld": {"side": int(r["walls"].shape[0]), "rooms_per_side": cfg.rooms, "room_cells_per_side": cfg.room, "free_cells": int((~r["walls"]).sum())},
            "env_steps": moves,
            "seeds": int(len(r["curious_distinct"])),
            "distinct_states_visited": {k: _stats(r[f"{k}_distinct"][:, -1]) for k in ("curious", "random")},
            "distinct_states_after_fewer_moves": {
                str(m): {k: _stats(r[f"{k}_distinct"][:, m - 1], per_seed=False) for k in ("curious", "random")} for m in early
            },
        }

    def plot(self, cfg: ExplorationConfig, run: Path) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import LogNorm

        from ..plotting import save_figure

        r = self._load(run)
        walls = r["walls"]
        fig, axes = plt.subplots(1, 4, figsize=(18, 4.6))
        vmax = max(r["curious_visits"][0].max(), r["random_visits"][0].max())
        for ax, kind in zip(axes[:2], ("curious", "random")):
            visits = r[f"{kind}_visits"][0]
            ax.imshow(np.where(walls, 0.35, 1.0), cmap="gray", vmin=0, vmax=1)
            im = ax.imshow(np.ma.masked_where(visits == 0, visits), cmap="viridis", norm=LogNorm(vmin=1, vmax=vmax))
            n = r[f"{kind}_distinct"][:, -1]
            ax.set_title(f"{kind} agent: visits in seed 0 (white: never)\n{len(n)} seeds: {n.mean():.1f} ± {n.std():.1f} distinct cells", fontsize=10)
            ax.plot(0, 0, "r*", ms=10)
            ax.axis("off")
            fig.colorbar(im, ax=ax, fraction=0.046)
        ax = axes[2]
        k = int(r["snapshot_move"])
        first = r["curious_first"][0]
        ax.imshow(np.where(walls, 0.35, 1.0), cmap="gray", vmin=0, vmax=1)
        im = ax.imshow(np.ma.masked_where(walls, r["curious_error_snapshot"][0]), cmap="magma")
        seen = (first >= 0) & (first <= k)
        rows, cols = np.nonzero(seen)
        ax.scatter(cols, rows, s=8, c="cyan", marker="o")
        ax.set_title(f"curious agent's AE error after {k} moves, seed 0\n(intrinsic reward; cyan dots: visited by then)", fontsize=10)
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046)
        ax = axes[3]
        for kind, colour in (("curious", "tab:orange"), ("random", "tab:blue")):
            d = r[f"{kind}_distinct"]
            t = np.arange(1, d.shape[1] + 1)
            ax.plot(t, d.mean(0), color=colour, label=kind)
            ax.fill_between(t, d.mean(0) - d.std(0), d.mean(0) + d.std(0), color=colour, alpha=0.25)
        ax.axhline(int((~walls).sum()), color="gray", ls=":", label="free cells")
        ax.set_xlabel("moves")
        ax.set_ylabel("distinct cells visited")
        ax.set_title("distinct cells vs moves (mean ± std)")
        ax.legend()
        return save_figure(fig, self.figure_path(run))
