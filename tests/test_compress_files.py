"""``compress encode`` / ``decode`` on files and folders: outputs that would clash, outputs of the
wrong kind and unreachable targets are refused or reported before anything is lost."""
from __future__ import annotations

import math

import pytest
import torch

from compress.cli import main
from shared.data.images import save_image
from shared.errors import UserError


def photo(h: int = 40, w: int = 56, c: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.interpolate(torch.rand(1, c, h // 8 + 1, w // 8 + 1, generator=g), size=(h, w), mode="bilinear")[0]


def test_two_inputs_that_would_write_one_output_are_refused_before_any_work(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    save_image(photo(seed=0), src / "a.png")
    save_image(photo(seed=1), src / "a.jpg")
    with pytest.raises(UserError, match="would both be written to"):
        main(["encode", str(src), "-o", str(tmp_path / "enso")])
    assert not (tmp_path / "enso").exists()


def test_several_inputs_need_a_folder_not_a_file(tmp_path):
    for i in range(2):
        save_image(photo(seed=i), tmp_path / f"p{i}.png")
    (tmp_path / "afile").write_bytes(b"mine")
    with pytest.raises(UserError, match="not a folder"):
        main(["encode", str(tmp_path / "p0.png"), str(tmp_path / "p1.png"), "-o", str(tmp_path / "afile")])
    assert (tmp_path / "afile").read_bytes() == b"mine"


def test_encode_refuses_an_image_name_for_its_output(tmp_path):
    save_image(photo(), tmp_path / "p.png")
    with pytest.raises(UserError, match="named like an image"):
        main(["encode", str(tmp_path / "p.png"), "-o", str(tmp_path / "out.png")])
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("bpp", ["nan", "inf", "0", "-1"])
def test_target_bpp_must_be_a_positive_number(tmp_path, bpp):
    save_image(photo(), tmp_path / "p.png")
    with pytest.raises(UserError, match="target_bpp must be a positive number"):
        main(["encode", str(tmp_path / "p.png"), "-o", str(tmp_path / "p.enso"), "--target-bpp", bpp])
    assert not (tmp_path / "p.enso").exists()


def test_an_unreachable_target_bpp_is_reported(tmp_path, capsys):
    save_image(photo(), tmp_path / "p.png")
    assert main(["encode", str(tmp_path / "p.png"), "-o", str(tmp_path / "p.enso"), "--target-bpp", "0.001"]) == 0
    err = capsys.readouterr().err
    assert "no quality reaches 0.001 bpp" in err
    written = float(err.split("smallest file, ")[1].split(" bpp")[0])
    assert written > 0.001 and math.isfinite(written)


def test_rgba_decoded_to_jpeg_is_one_clear_error(tmp_path):
    save_image(photo(c=4), tmp_path / "p.png")
    assert main(["encode", str(tmp_path / "p.png"), "-o", str(tmp_path / "p.enso")]) == 0
    with pytest.raises(UserError, match="use .png"):
        main(["decode", str(tmp_path / "p.enso"), "-o", str(tmp_path / "p.jpg")])
    assert not (tmp_path / "p.jpg").exists()


def test_a_bad_file_in_a_folder_stops_decoding_before_any_output(tmp_path):
    save_image(photo(), tmp_path / "a.png")
    enc = tmp_path / "enc"
    enc.mkdir()
    assert main(["encode", str(tmp_path / "a.png"), "-o", str(enc / "a.enso")]) == 0
    (enc / "b.enso").write_bytes(b"ENSO" + bytes(10))
    with pytest.raises(UserError, match="b.enso"):
        main(["decode", str(enc), "-o", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "a.png").exists()


def test_a_file_from_unshipped_weights_stops_a_folder_before_any_output(tmp_path):
    from compress.container import Header, pack, parse

    save_image(photo(), tmp_path / "a.png")
    enc = tmp_path / "enc"
    enc.mkdir()
    assert main(["encode", str(tmp_path / "a.png"), "-o", str(enc / "a.enso")]) == 0
    header, sections = parse((enc / "a.enso").read_bytes())
    other = Header(header.mode, "not_shipped", header.weights_hash, header.quality_code, header.height, header.width)
    (enc / "b.enso").write_bytes(pack(other, sections))
    with pytest.raises(UserError, match="b.enso was written by codec 'not_shipped'"):
        main(["decode", str(enc), "-o", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "a.png").exists()


def test_quality_and_target_bpp_together_are_refused_before_any_work(tmp_path):
    save_image(photo(), tmp_path / "p.png")
    with pytest.raises(UserError, match="quality or target_bpp, not both"):
        main(["encode", str(tmp_path / "p.png"), "-o", str(tmp_path / "p.enso"), "--quality", "0.5", "--target-bpp", "0.3"])
    assert not (tmp_path / "p.enso").exists()


def test_threads_sets_torch_threads_and_a_negative_count_is_refused(tmp_path):
    save_image(photo(), tmp_path / "p.png")
    before = torch.get_num_threads()
    try:
        assert main(["encode", str(tmp_path / "p.png"), "-o", str(tmp_path / "p.enso"), "--threads", "2"]) == 0
        assert torch.get_num_threads() == 2
        assert main(["decode", str(tmp_path / "p.enso"), "-o", str(tmp_path / "p_back.png"), "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(UserError, match="threads must be 0"):
        main(["decode", str(tmp_path / "p.enso"), "-o", str(tmp_path / "q.png"), "--threads", "-1"])
    assert not (tmp_path / "q.png").exists()


def test_every_command_that_computes_takes_threads_and_model_options_drop_their_prefix():
    from compress.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name in ("encode", "decode", "demo", "eval", "export", "import-compressai", "train"):
        assert "--threads" in commands[name].format_help(), name
    for name in ("encode", "decode"):
        assert "runs on the CPU" in commands[name].format_help()
    train = ["train", "--data", "d", "--run", "r"]
    assert parser.parse_args([*train, "--N", "16", "--lambdas", "0.1", "0.2"]).N == 16
    old = parser.parse_args([*train, "--model-N", "16", "--model-train-only", "context"])  # the old spelling, hidden
    assert old.N == 16 and old.train_only == "context" and "--model-N" not in commands["train"].format_help()
