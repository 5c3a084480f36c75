"""The sequence AE, the series data, the anomaly use and the exploration use, at tiny sizes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from shared import registry
from shared.cli import main as cli_main
from shared.data import TensorItems
from shared.data.digits import load_digits
from shared.data.series import (
    load_nab,
    points_from_windows,
    read_timestamp_csv,
    sliding_windows,
    standardise,
    synthetic_series,
    window_labels,
)
from shared.errors import UserError
from shared.metrics.detection import roc_auc
from shared.trainer import TrainConfig, Trainer, seed_everything
from shared.uses.anomaly import Anomaly, AnomalyConfig
from shared.uses.exploration import (
    Exploration,
    GridWorld,
    action_values,
    curious_episode,
    random_episode,
)
from tests.conftest import shared_data

FAST = dict(progress=False, precision="fp32", device="cpu", log_every=1000, ckpt_every=10**6)




# -- the sequence autoencoder -------------------------------------------------------------------
@pytest.mark.parametrize("encoder", ["gru", "tcn"])
def test_sequence_ae_shapes(encoder, seed):
    model = registry.build("sequence_ae", {"window": 16, "features": 3, "latent_dim": 4, "hidden": 8, "encoder": encoder})
    assert model.conv is False
    x = torch.randn(5, 16, 3)
    out = model(x)
    assert out["x_hat"].shape == (5, 16, 3) and out["z"].shape == (5, 4)
    assert model.score(x).shape == (5,) and model.pointwise_error(x).shape == (5, 16)
    assert torch.allclose(model.score(x), model.pointwise_error(x).mean(1))
    with pytest.raises(ValueError, match="windows of shape"):
        model(torch.randn(5, 15, 3))


@pytest.mark.parametrize("encoder", ["gru", "tcn"])
def test_sequence_ae_loss_decreases_through_trainer(encoder):
    s = synthetic_series(length=400, period=20, anomalies=0, seed=1)
    windows, _ = sliding_windows(standardise(s.values), 20)
    seed_everything(0)
    model = registry.build("sequence_ae", {"window": 20, "latent_dim": 4, "hidden": 16, "encoder": encoder})
    with torch.no_grad():
        before = float(model.score(windows).mean())
    Trainer(model, TensorItems(windows), TrainConfig(steps=40, batch_size=32, lr=5e-3, **FAST)).fit()
    model.eval()
    with torch.no_grad():
        after = float(model.score(windows).mean())
    assert after < 0.85 * before


# -- series -------------------------------------------------------------------------------------
def test_synthetic_series_deterministic_and_labels_match_injections():
    a, b = synthetic_series(length=1500, period=25, anomalies=6, seed=3), synthetic_series(length=1500, period=25, anomalies=6, seed=3)
    assert np.array_equal(a.values, b.values) and np.array_equal(a.labels, b.labels) and a.windows == b.windows
    assert not np.array_equal(a.values, synthetic_series(length=1500, period=25, anomalies=6, seed=4).values)
    assert set(a.kinds) == {"spike", "level_shift", "frequency"} and len(a.windows) == 6
    clean = synthetic_series(length=1500, period=25, anomalies=0, seed=3)
    changed = np.abs(a.values - clean.values).max(1) > 0
    assert not changed[~a.labels].any()  # nothing changed outside the labels
    mask = np.zeros(len(a), dtype=bool)
    for start, end in a.windows:
        mask[start:end] = True
        assert changed[start:end].mean() > 0.5  # every labelled window holds an injected change
    assert np.array_equal(mask, a.labels)


def test_windows_labels_and_points():
    values = np.arange(10, dtype=float)[:, None]
    w, starts = sliding_windows(values, 4, stride=2)
    assert w.shape == (4, 4, 1) and list(starts) == [0, 2, 4, 6]
    assert torch.equal(w[1, :, 0], torch.tensor([2.0, 3.0, 4.0, 5.0]))
    labels = np.zeros(10, dtype=bool)
    labels[5] = True
    assert list(window_labels(labels, starts, 4)) == [False, True, True, False]
    pts = points_from_windows(np.ones((4, 4)) * np.arange(4)[:, None], starts, 10)
    assert pts[0] == 0 and pts[2] == 0.5 and pts[9] == 3 and np.isnan(points_from_windows(np.ones((1, 4)), np.array([0]), 6)[5])
    z = standardise(np.array([[1.0], [3.0], [100.0]]), fit_until=2)
    assert np.allclose(z[:2, 0], [-1, 1])
    with pytest.raises(UserError, match="fewer than one window"):
        sliding_windows(values, 11)


def test_nab_loader_on_the_real_folder():
    root = shared_data("nab")
    crlf = root / "data" / "realKnownCause" / "rogue_agent_key_hold.csv"
    assert b"\r\n" in crlf.read_bytes()[:200]  # this file really uses CRLF line endings
    s = load_nab("rogue_agent_key_hold", root)
    assert s.name == "realKnownCause/rogue_agent_key_hold.csv"
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())[s.name]
    assert s.values.shape == (1882, 1) and np.isfinite(s.values).all()
    assert len(s.windows) == len(windows) == 2
    for (a, b), (start, end) in zip(s.windows, windows):  # labels align with the timestamps of the windows
        assert s.time[a] >= np.datetime64(start, "s") and s.time[b - 1] <= np.datetime64(end, "s")
        assert a == 0 or s.time[a - 1] < np.datetime64(start, "s")
    assert (np.diff(s.time) > np.timedelta64(0, "s")).all()
    lf = load_nab("realKnownCause/nyc_taxi.csv", root)
    assert len(lf) == 10320 and lf.labels.any()


def test_series_bad_inputs(tmp_path, monkeypatch):
    monkeypatch.delenv("ENSO_DATA", raising=False)
    with pytest.raises(UserError, match="ENSO_DATA"):
        load_nab("nyc_taxi")
    with pytest.raises(UserError, match="does not exist"):
        load_nab("nyc_taxi", tmp_path / "nowhere")
    (tmp_path / "data" / "cat").mkdir(parents=True)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "combined_windows.json").write_text(json.dumps({"cat/bad.csv": [], "cat/good.csv": []}))
    (tmp_path / "data" / "cat" / "good.csv").write_bytes(b"timestamp,value\r\n2014-01-01 00:00:00,1.5\r\n2014-01-01 00:05:00,2\r\n")
    (tmp_path / "data" / "cat" / "bad.csv").write_text("timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,oops\n")
    assert load_nab("good", tmp_path).values[:, 0].tolist() == [1.5, 2.0]
    with pytest.raises(UserError, match="unknown NAB series 'goood'.*did you mean"):
        load_nab("goood", tmp_path)
    with pytest.raises(UserError, match="line 3"):
        load_nab("cat/bad.csv", tmp_path)
    (tmp_path / "noheader.csv").write_text("2014-01-01 00:00:00,1\n")
    with pytest.raises(UserError, match="header"):
        read_timestamp_csv(tmp_path / "noheader.csv")
    with pytest.raises(UserError, match="period"):
        synthetic_series(length=10, period=5)
    with pytest.raises(UserError, match="anomaly kind"):
        synthetic_series(kinds=("wobble",))


# -- the anomaly use ----------------------------------------------------------------------------
def test_one_class_digits_auc_after_short_training():
    x, y = load_digits("train")
    xt, yt = load_digits("test")
    seed_everything(0)
    model = registry.build("ae", {"input_shape": (1, 8, 8), "widths": (16, 32), "latent_dim": 4})
    Trainer(model, TensorItems(x[y == 3]), TrainConfig(steps=40, batch_size=32, lr=3e-3, **FAST)).fit()
    model.eval()
    with torch.no_grad():
        scores = model.score(xt)
    assert roc_auc(scores, yt != 3) > 0.5


def _tiny_anomaly(**kw) -> AnomalyConfig:
    """A small anomaly config; its keys are flag names (window etc. land in the sequence AE's config)."""
    base = dict(every_digit=False, normal_digit=1, window=24, latent_dim=4, hidden=8, series_length=600, series_period=20)
    return Anomaly().config(**(base | kw))


def test_anomaly_use_end_to_end(tmp_path):
    use = Anomaly()
    cfg = _tiny_anomaly(nab_series="off")
    use.train(cfg, use.train_config(steps=15, batch_size=16, **FAST), tmp_path)
    numbers = json.loads(use.write_numbers(cfg, tmp_path).read_text())
    assert numbers["digits"]["normal_digit"] == 1 and 0.0 <= numbers["digits"]["roc_auc"] <= 1.0
    assert set(numbers["series"]) == {"synthetic"}
    syn = numbers["series"]["synthetic"]
    assert 0.0 <= syn["point_roc_auc"] <= 1.0 and 0.0 <= syn["window_roc_auc"] <= 1.0 and syn["anomalous_test_points"] > 0
    assert use.plot(cfg, tmp_path).stat().st_size > 10_000
    with pytest.raises(UserError, match="--resume"):
        use.train(cfg, use.train_config(steps=15, batch_size=16, **FAST), tmp_path)
    with pytest.raises(UserError, match="normal_digit"):
        use.train(_tiny_anomaly(normal_digit=12), use.train_config(steps=1, **FAST), tmp_path / "x")


def test_anomaly_use_on_a_nab_series(tmp_path):
    root = shared_data("nab")
    use = Anomaly()
    cfg = _tiny_anomaly(nab_series="rogue_agent_key_hold", nab_dir=str(root), nab_downsample=1, encoder="gru")
    use.train(cfg, use.train_config(steps=10, batch_size=16, **FAST), tmp_path)
    nab = json.loads(use.write_numbers(cfg, tmp_path).read_text())["series"]["nab"]
    assert nab["series"] == "realKnownCause/rogue_agent_key_hold.csv" and nab["length"] == 1882
    assert nab["anomalous_test_points"] > 0 and 0.0 <= nab["point_roc_auc"] <= 1.0
    with pytest.raises(UserError, match="unknown NAB series"):
        use.train(_tiny_anomaly(nab_series="no_such_series", nab_dir=str(root)), use.train_config(steps=1, **FAST), tmp_path / "y")


# -- exploration --------------------------------------------------------------------------------
def test_gridworld_is_deterministic():
    env = GridWorld.rooms(2, 3)
    assert env.side == 7 and env.free_cells == 4 * 9 + 4
    assert np.array_equal(env.walls, GridWorld.rooms(2, 3).walls)
    assert env.move(0, 0) == 0 and env.move(0, 2) == 0  # the border stays put
    assert env.move(0, 3) == 1 and env.move(0, 1) == 7
    assert env.move(2, 3) == 2  # (0, 3) is a wall
    assert env.move(1 * 7 + 2, 3) == 1 * 7 + 3  # the door in the middle of the wall
    a, b = random_episode(env, 200, seed=5), random_episode(env, 200, seed=5)
    assert np.array_equal(a.visits, b.visits) and np.array_equal(a.distinct, b.distinct)
    assert a.visits.sum() == 201 and not a.visits[env.walls].any()
    assert env.observe([3]).shape == (1, 49) and env.observe([3])[0, 3] == 1


def test_planning_on_a_reward_map_reaches_the_rewarding_cell():
    env = GridWorld.rooms(2, 3)
    goal = env.cells - 1  # the far corner, three rooms away
    reward = np.zeros(env.cells)
    reward[goal] = 1.0
    q = action_values(env.transitions(), reward, horizon=20, gamma=0.9)
    cell, path = env.start, 0
    while cell != goal and path < 20:
        cell, path = env.move(cell, int(q[cell].argmax())), path + 1
    assert cell == goal and path == 12  # the shortest path through two doors
    one_step = action_values(env.transitions(), reward, horizon=1, gamma=0.9)
    assert (one_step[env.start] == 0).all()  # a one-step lookahead sees nothing from the start


def test_curious_agent_visits_more_cells_than_random():
    env = GridWorld.rooms(2, 3)
    cfg = Exploration().config(rooms=2, room=3, env_steps=150, hidden=64, latent_dim=8, buffer=200)
    train = Exploration().train_config(steps=450, batch_size=16, **FAST)
    curious = [curious_episode(env, cfg, train, s)[0].distinct[-1] for s in range(3)]
    random_ = [random_episode(env, cfg.env_steps, s).distinct[-1] for s in range(3)]
    assert np.mean(curious) > np.mean(random_) + 3


def test_exploration_use_end_to_end_through_the_cli(tmp_path, capsys):
    args = ["--rooms", "2", "--room", "3", "--env-steps", "60", "--seeds", "2", "--buffer", "40", "--hidden", "16"]
    fast = ["--steps", "60", "--batch-size", "16", "--no-progress", "--precision", "fp32", "--device", "cpu"]
    assert cli_main(["demo", "exploration", "-o", str(tmp_path / "exploration"), *args, *fast]) == 0
    numbers = json.loads((tmp_path / "exploration" / "numbers.json").read_text())
    visited = numbers["distinct_states_visited"]
    assert numbers["seeds"] == 2 and numbers["env_steps"] == 60 and numbers["gridworld"]["free_cells"] == 40
    for kind in ("curious", "random"):
        assert len(visited[kind]["per_seed"]) == 2 and 1 <= visited[kind]["mean"] <= 40
    assert (tmp_path / "exploration" / "exploration.png").stat().st_size > 10_000
    assert "distinct cells" in capsys.readouterr().out
    with pytest.raises(UserError, match="--resume"):
        cli_main(["train", "exploration", "-o", str(tmp_path), *args, *fast])  # the old spelling of --run OUT/USE
