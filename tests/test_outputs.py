"""The one output planner (shared/outputs.py): when ``-o`` names a file and when a folder, and
what is refused before any work."""
from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import UserError
from shared.outputs import input_files, plan_outputs


@pytest.fixture
def photos(tmp_path) -> Path:
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    for name in ("a.jpg", "b.png", "sub/c.webp", "notes.txt"):
        (tmp_path / "photos" / name).write_bytes(b"x")
    return tmp_path / "photos"


def test_a_folder_maps_each_image_to_its_relative_path_with_the_commands_suffix(tmp_path, photos):
    jobs = plan_outputs([photos], tmp_path / "out", ".png", force=False)
    assert [(src.relative_to(photos).as_posix(), dst.relative_to(tmp_path / "out").as_posix()) for src, dst in jobs] == [
        ("a.jpg", "a.png"), ("b.png", "b.png"), ("sub/c.webp", "sub/c.png")]


def test_one_file_and_a_name_with_a_suffix_the_command_writes_gives_that_file(tmp_path, photos):
    assert plan_outputs([photos / "a.jpg"], tmp_path / "x.jpeg", ".png", False) == [(photos / "a.jpg", tmp_path / "x.jpeg")]
    assert plan_outputs([photos / "a.jpg"], tmp_path / "x.enso", ".enso", False) == [(photos / "a.jpg", tmp_path / "x.enso")]


@pytest.mark.parametrize("name", ["results.v2", "out", "photos.2024"])
def test_a_suffix_no_command_reads_or_writes_names_a_folder(tmp_path, photos, name):
    assert plan_outputs([photos / "a.jpg"], tmp_path / name, ".enso", False) == [(photos / "a.jpg", tmp_path / name / "a.enso")]


def test_an_existing_folder_stays_a_folder_whatever_its_suffix(tmp_path, photos):
    (tmp_path / "dir.png").mkdir()
    assert plan_outputs([photos / "a.jpg"], tmp_path / "dir.png", ".png", False) == [(photos / "a.jpg", tmp_path / "dir.png" / "a.png")]


def test_a_folder_input_never_writes_one_file_even_with_one_image(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "a.png").write_bytes(b"x")
    with pytest.raises(UserError, match="names a file, but the inputs are a folder or several files; give an output folder"):
        plan_outputs([tmp_path / "one"], tmp_path / "a.enso", ".enso", False)


def test_a_file_name_of_the_wrong_kind_is_refused(tmp_path, photos):
    with pytest.raises(UserError, match=r"named like an image, but this command writes \.enso files; use \.enso"):
        plan_outputs([photos / "a.jpg"], tmp_path / "a.png", ".enso", False)
    (tmp_path / "a.enso").write_bytes(b"x")
    with pytest.raises(UserError, match=r"named like a \.enso file, but this command writes images; use \.png"):
        plan_outputs([tmp_path / "a.enso"], tmp_path / "b.enso", ".png", False, input_suffix=".enso")


def test_an_existing_file_cannot_be_a_folder_even_with_force(tmp_path, photos):
    (tmp_path / "afile").write_bytes(b"mine")
    with pytest.raises(UserError, match="is an existing file, not a folder"):
        plan_outputs([photos], tmp_path / "afile", ".png", True)


def test_clashes_and_existing_outputs_are_refused_before_any_work(tmp_path, photos):
    (photos / "a.png").write_bytes(b"x")  # a.jpg and a.png both → out/a.png
    with pytest.raises(UserError, match="would both be written to"):
        plan_outputs([photos], tmp_path / "out", ".png", True)
    (photos / "a.png").unlink()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b.png").write_bytes(b"mine")
    with pytest.raises(UserError, match=r"out/b.png exists; pass --force"):
        plan_outputs([photos], tmp_path / "out", ".png", False)
    assert len(plan_outputs([photos], tmp_path / "out", ".png", True)) == 3
    assert (tmp_path / "out" / "b.png").read_bytes() == b"mine"  # planning writes nothing


def test_input_files_walks_folders_for_the_asked_suffix(tmp_path, photos):
    (photos / "sub" / "d.enso").write_bytes(b"x")
    assert [rel.as_posix() for _, rel in input_files([photos], ".enso")] == ["sub/d.enso"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no .enso files"):
        input_files([tmp_path / "empty"], ".enso")
    with pytest.raises(UserError, match="does not exist"):
        input_files([tmp_path / "nowhere"])



def test_save_figure_writes_png_or_jpeg_by_suffix(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from shared.plotting import save_figure

    for name, magic in (("a.png", b"\x89PNG"), ("b.jpg", b"\xff\xd8\xff"), ("c.JPEG", b"\xff\xd8\xff")):
        fig = plt.figure(figsize=(1, 1))
        fig.add_subplot().plot([0, 1])
        assert save_figure(fig, tmp_path / name).read_bytes()[:len(magic)] == magic
