"""The ae command end to end on tiny settings, and its one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys

from PIL import Image


def ae(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], capture_output=True, text=True, env=env)


def test_list_names_uses_and_models():
    out = ae("list")
    assert out.returncode == 0
    for name in ("generation", "vae", "cvae", "beta_vae", "resnet_ae"):
        assert name in out.stdout


def test_demo_generation_writes_numbers_and_figure(tmp_path):
    out = ae("demo", "generation", "-o", str(tmp_path), "--steps", "30", "--no-progress", "--precision", "fp32")
    assert out.returncode == 0, out.stderr
    numbers = json.loads((tmp_path / "generation" / "numbers.json").read_text())
    assert numbers["test_images"] > 100 and 0 <= numbers["vae"]["latent_knn5_accuracy"] <= 1
    assert numbers["vae"]["neg_elbo_nats"] > 0
    with Image.open(tmp_path / "generation" / "generation.png") as im:
        assert im.width > 500
    # the run is not overwritten without --resume; with it, training continues to a larger --steps
    again = ae("train", "generation", "-o", str(tmp_path), "--steps", "40", "--no-progress", "--precision", "fp32")
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr
    more = ae("train", "generation", "-o", str(tmp_path), "--steps", "40", "--no-progress", "--precision", "fp32", "--resume")
    assert more.returncode == 0, more.stderr


def test_eval_before_train_is_one_line(tmp_path):
    out = ae("eval", "generation", "-o", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "ae train" in out.stderr


def test_output_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("keep me")
    out = ae("train", "generation", "-o", str(f), "--steps", "1")
    assert out.returncode == 2 and "is a file" in out.stderr
    assert f.read_text() == "keep me"


def test_unknown_use_and_bad_choice_exit_non_zero():
    assert ae("train", "nonsense").returncode != 0
    out = ae("train", "generation", "--precision", "fp64")
    assert out.returncode != 0 and "fp64" in out.stderr
