"""Files written earlier still decode, and the same latents still code to the same bytes.

tests/data/format holds, per shipped codec, a small ``.enso`` file of format VERSION, the latents its
encoder coded, and the SHA-256 of the latent it decodes to (scripts/make_format_fixtures.py wrote
them). A change to the integer hyper-synthesis, the context networks, the CDF indexing or the rANS
calls that alters any coded value fails here: such a change must bump the container's VERSION
(old files are then refused with a clear message, not misread) and rewrite the fixtures."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from compress.codec import STRIDE, Codec
from compress.container import VERSION, parse
from scripts.make_format_fixtures import CODECS, latent_sha256

FIXTURES = Path(__file__).parent / "data" / "format"
INDEX = json.loads((FIXTURES / "fixtures.json").read_text())


def test_fixtures_are_of_this_format_version():
    assert INDEX["format_version"] == VERSION, "the container's VERSION changed: run scripts/make_format_fixtures.py"
    assert set(INDEX["codecs"]) == set(CODECS)


@pytest.fixture(scope="module", params=CODECS)
def fixture(request):
    name = request.param
    data = (FIXTURES / f"{name}.enso").read_bytes()
    header, sections = parse(data)
    codec = Codec.load(name)
    if codec.hash != header.weights_hash:
        pytest.fail(f"the shipped {name} weights changed since the fixture was written: run scripts/make_format_fixtures.py")
    return name, codec, data, header, sections


@pytest.mark.parametrize("threads", [1, 2])
def test_old_files_decode_to_the_same_latent(fixture, threads):
    name, codec, data, header, sections = fixture
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            size = tuple((n + -n % STRIDE) // 16 for n in (header.height, header.width))  # y's size, as Codec.decode pads
            y_hat = codec.model.decompress_latent(sections, size)
    finally:
        torch.set_num_threads(previous)
    assert latent_sha256(y_hat) == INDEX["codecs"][name]["y_hat_sha256"]
    img = codec.decode(data)
    assert img.shape == (3, header.height, header.width)


def test_the_same_latents_code_to_the_same_bytes(fixture):
    name, codec, _, _, sections = fixture
    tensors = load_file(str(FIXTURES / f"{name}.latent.safetensors"))
    y, z = tensors["y"].float(), tensors["z"]
    with torch.no_grad(), torch.autocast("cpu", enabled=False):
        strings = codec.model.compress_latent(y, run=lambda net, v: z)  # z as the encoder had it: the rest is exact
    assert strings == sections
