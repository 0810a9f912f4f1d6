"""FSDP2: the SFT recipe's model sharded over every process, on GPUs or on CPU processes (gloo).

With ``distributed.strategy: fsdp`` and more than one process, each decoder layer and then the
causal language model around them become ``fully_shard`` units, so every process holds a
slice of every weight and of the optimizer moments. Studio shards the model itself rather
than through ``accelerator.prepare`` because accelerate runs CPU processes as DDP only; one
code path then serves the CPU processes of the tests and the GPUs of a real machine.

A sharded model changes three rules of the single-process recipe:

* every collective is entered by every process: a forward pass all-gathers the layer's
  weights, so evaluation and generation run on every process the same number of times;
* saving gathers full (unsharded) weights and optimizer state on every process (collective),
  and only the main process writes them, in the same files as an unsharded run, so ``final/``
  and checkpoints load on one process and a resume may use another number of processes;
* gradient accumulation turns off the reduce-scatter for all but the last micro-batch.
"""

from __future__ import annotations

import contextlib
import logging

from studio.core.errors import ConfigError

log = logging.getLogger("studio.worker")

#: Methods whose weights FSDP2 can shard: their trainable parameters live inside ordinary
#: modules. Prompt-learning methods keep a prompt encoder outside the model's forward, and
#: bitsandbytes' 4-bit weights cannot be split into DTensor shards.
SUPPORTED_METHODS = ("full", "freeze", "lora", "dora", "ia3")


def wanted(cfg, num_processes: int) -> bool:
    """Whether this run trains sharded (FSDP with several processes)."""
    return cfg.distributed.strategy == "fsdp" and num_processes > 1


def check_supported(cfg) -> None:
    """Refuse, with the setting to change, what FSDP cannot shard."""
    method = cfg.method.name
    if method == "qlora":
        raise ConfigError([("method.name", "QLoRA cannot be sharded with FSDP here: its 4-bit (bitsandbytes NF4) "
                                           "weights do not split into shards; use distributed.strategy=ddp (each "
                                           "process holds the small 4-bit model) or method lora")])
    if method not in SUPPORTED_METHODS:
        raise ConfigError([("method.name", f"{method} cannot be sharded with FSDP (its virtual-token encoder lives "
                                           f"outside the model's layers); FSDP supports {', '.join(SUPPORTED_METHODS)}; "
                                           "use distributed.strategy=ddp for this method")])


def shard(model, device):
    """Apply ``fully_shard`` per decoder layer, then to the causal LM that holds them.

    The causal LM (not a PEFT wrapper around it) is the outer unit because generation calls
    its ``forward`` directly. Returns the same model object, now holding DTensor shards.
    """
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    layer_classes = set(getattr(base, "_no_split_modules", None) or [])
    layers = [m for m in base.modules() if type(m).__name__ in layer_classes]
    if not layers:
        raise ConfigError([("distributed.strategy", f"{type(base).__name__} names no decoder-layer class to shard "
                                                    "(_no_split_modules); use distributed.strategy=ddp")])
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(base, mesh=mesh)
    log.info("FSDP2: %d decoder layers and the model sharded over %d processes", len(layers), mesh.size())
    return model


@contextlib.contextmanager
def no_sync(model):
    """Skip the gradient reduce-scatter for a micro-batch that is not the step's last."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        base.set_requires_gradient_sync(True)


def clip_grad_norm(params: list, limit: float) -> float:
    """Clip sharded gradients by their global norm; returns the norm before clipping (collective)."""
    import torch

    norm = torch.nn.utils.clip_grad_norm_(params, limit)
    full = getattr(norm, "full_tensor", None)
    return float(full() if full else norm)


def _options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    # cpu_offload: the gathered copy lives in CPU memory of the main process only (the
    # others receive an empty dict), so a model larger than one GPU can still be saved.
    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_model_state(model) -> dict:
    """Every weight, unsharded, on the main process's CPU (collective: every process calls it)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_options())


def full_trainable_state(model) -> dict:
    """The trainable weights by name, unsharded, on the main process (collective)."""
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    return {name: t for name, t in full_model_state(model).items() if name in trainable}


def full_optimizer_state(model, optimizer) -> dict:
    """The optimizer's state keyed by parameter name, unsharded, on the main process (collective)."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=_options())


def restore(model, optimizer, weights: dict, optimizer_state: dict) -> None:
    """Load full (unsharded) trainable weights and optimizer state into the sharded model.

    Every process passes the full state it read from the checkpoint; each keeps its own
    slice, so a checkpoint written by any number of processes restores onto this one.
    """
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                         set_optimizer_state_dict)

    options = StateDictOptions(full_state_dict=True, strict=False)
    set_model_state_dict(model, weights, options=options)
    set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)


def restore_weights(model, checkpoint) -> None:
    """Load a checkpoint's trainable weights (full tensors) into the sharded model."""
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    weights = load_file(str(checkpoint / "trainable.safetensors"))
    set_model_state_dict(model, weights, options=StateDictOptions(full_state_dict=True, strict=False))
