"""The one adapter over CompressAI's private internals (compress/models/compressai_adapter.py):
every private name it uses exists on real CompressAI objects of the installed version, and a
moved one is named; configs refuse bad values with a ValueError naming fields, which the CLI
wrapper prints as one line."""
from __future__ import annotations

import pytest
import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional

from compress.models import compressai_adapter as adapter
from compress.models.channel_context import ContextConfig
from shared.errors import ConfigError, run_cli


def built_models() -> list:
    torch.manual_seed(0)
    eb = EntropyBottleneck(4, entropy_coder="ans")
    gc = GaussianConditional([0.11, 0.5, 2.0, 8.0], entropy_coder="ans")
    eb.update(force=True)
    gc.update()
    return [eb, gc]


def test_every_private_attribute_the_adapter_uses_is_on_the_installed_compressai():
    models = built_models()
    for m in models:
        for cls, names in adapter.PRIVATE_ATTRIBUTES.items():
            if isinstance(m, cls):
                for name in names:
                    assert hasattr(m, name), f"compressai moved {cls.__name__}.{name}: update compress/models/compressai_adapter.py"
    adapter.check_compressai(models)  # raises, naming the attribute, if one moved
    for m in models:
        buffers = dict(m.named_buffers())
        assert all(name in buffers for name in adapter.TABLE_BUFFERS), f"compressai renamed a table buffer: {sorted(buffers)}"


def test_a_moved_attribute_is_named(monkeypatch):
    eb, gc = built_models()
    monkeypatch.delattr(EntropyBottleneck, "_get_medians")
    with pytest.raises(RuntimeError, match=r"has no EntropyBottleneck\._get_medians: .*compressai_adapter\.py"):
        adapter.check_compressai([eb, gc])


def test_the_adapter_returns_what_compressai_computes():
    eb, gc = built_models()
    cdf, lengths, offsets = adapter.coder_table_tensors(gc)
    assert cdf.shape[0] == lengths.shape[0] == offsets.shape[0] == 4 and cdf.dtype == torch.int32
    assert adapter.medians(eb).shape == (4, 1, 1)
    v = torch.randn(4, 1, 10)
    assert torch.equal(adapter.bottleneck_likelihood_raw(eb, v), eb._likelihood(v)[0])
    y, s = torch.randn(1, 4, 3, 3), torch.rand(1, 4, 3, 3) + 0.2
    assert torch.equal(adapter.gaussian_likelihood_raw(gc, y, s, None), gc._likelihood(y, s, None))
    with pytest.raises(ValueError, match="update"):
        adapter.coder_table_tensors(EntropyBottleneck(2))


def test_a_bad_codec_config_is_a_value_error_naming_fields_and_one_cli_line(capsys):
    with pytest.raises(ValueError, match=r"slices=5 must be at least 1 and divide M=192") as e:
        ContextConfig(slices=5)
    assert "--" not in str(e.value)

    def main(argv):
        ContextConfig(slices=5)

    assert run_cli(main, []) == 2
    err = capsys.readouterr().err
    assert err == "error: slices=5 must be at least 1 and divide M=192\n"
    assert issubclass(ConfigError, ValueError)
