"""Test fixtures. Tests that need the team's data read it from $ENSO_DATA and skip when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # tests use tiny models; more threads only add overhead


def shared_data(name: str) -> Path:
    """``$ENSO_DATA/name``, or skip the test saying why."""
    root = os.environ.get("ENSO_DATA")
    if not root or not (Path(root) / name).is_dir():
        pytest.skip(f"needs the {name} data: set ENSO_DATA to the folder holding {name}/ (CI sets it to ../shared/data)")
    return Path(root) / name


@pytest.fixture
def seed():
    torch.manual_seed(0)
    return 0


#: tests over about 20 s in a clean-clone run of the whole suite on 2 CPU threads
#: (`ENSO_DATA=../shared/data python -m pytest -q -p no:cacheprovider --durations=0`); they carry the
#: ``slow`` marker, so ``pytest -m "not slow"`` is the quick loop while CI runs everything
SLOW_TESTS = {
    "tests/test_codec.py::test_mutations_behind_a_valid_crc_never_crash[mean_scale_cc]",
    "tests/test_translate_eval.py::test_eval_writes_fid_kid_cycle_psnr_and_a_page",
    "tests/test_trainer.py::test_every_registered_model_trains_a_few_steps[cut]",
    "tests/test_cli.py::test_demo_writes_into_its_folder_and_train_eval_plot_share_run",
    "tests/test_trainer.py::test_every_registered_model_trains_a_few_steps[cyclegan]",
    "tests/test_codec.py::test_mutations_behind_a_valid_crc_never_crash[mean_scale]",
    "tests/test_channel_context.py::test_context_trains_alone_from_a_mean_scale_codec_and_ships_only_itself",
    "tests/test_trainer.py::test_every_registered_model_trains_a_few_steps[fastcut]",
    "tests/test_codec.py::test_file_decodes_identically_in_new_processes_with_other_thread_counts[small]",
    "tests/test_codec.py::test_crafted_sections_behind_a_valid_crc_do_not_kill_the_process[shipped:mean_scale_cc]",
    "tests/test_codec.py::test_file_decodes_identically_in_new_processes_with_other_thread_counts[mean_scale_cc]",
    "tests/test_channel_context.py::test_context_options_are_refused_for_other_codecs",
    "tests/test_codec.py::test_mutations_behind_a_valid_crc_never_crash[factorized]",
    "tests/test_sharpness.py::test_demo_end_to_end_on_tiny_photo_folders",
    "tests/test_codec.py::test_training_run_exports_to_a_loadable_codec",
    "tests/test_allocator.py::test_kept_memory_skips_page_faults_in_steady_steps",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
