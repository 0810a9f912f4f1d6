"""What FSDP sharding accepts, and the refusals that name the setting to change."""

from __future__ import annotations

import pytest

from studio.core import config as config_mod
from studio.core.errors import ConfigError
from studio.worker import sharding


def _cfg(method: str, strategy: str = "fsdp"):
    return config_mod.from_dict({"method": {"name": method}, "distributed": {"strategy": strategy},
                                 "data": {"padding": "longest"}})


def test_fsdp_shards_only_with_several_processes():
    assert sharding.wanted(_cfg("lora"), 2)
    assert not sharding.wanted(_cfg("lora"), 1) and not sharding.wanted(_cfg("lora", "ddp"), 2)


@pytest.mark.parametrize("method", sharding.SUPPORTED_METHODS)
def test_weight_methods_are_accepted(method):
    sharding.check_supported(_cfg(method))


@pytest.mark.parametrize("method, reason", [("qlora", "4-bit"), ("prefix", "virtual-token"),
                                            ("prompt", "virtual-token"), ("ptuning", "virtual-token")])
def test_qlora_and_prompt_methods_are_refused_with_the_reason_and_the_way_out(method, reason):
    with pytest.raises(ConfigError) as refused:
        sharding.check_supported(_cfg(method))
    text = str(refused.value)
    assert "method.name" in text and reason in text and "distributed.strategy=ddp" in text
