"""Commands and accelerate config files that carry one run to several GPUs and machines.

The same run folder trains on one device (``python -m studio.worker RUN_DIR``) or on many
(``accelerate launch ... -m studio.worker RUN_DIR``): the worker asks accelerate which process it
is, shards the data by rank and lets only the main process write events and checkpoints.

:func:`write_accelerate_config` writes ``RUN_DIR/accelerate_config.yaml`` from
``cfg.distributed`` (DDP, FSDP or DeepSpeed ZeRO); :func:`launch_commands` gives the exact
command for each machine. Only ``--machine_rank`` differs between machines; the main node's
address is a shell variable (``$STUDIO_MAIN_IP`` by default) so one script serves every node.

Pure (YAML and the core config, nothing heavy), so the window, ``studio train --print-launch`` and
the worker all build launch commands here.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from studio.core.config import RunConfig

CONFIG_NAME = "accelerate_config.yaml"
#: Placeholder for the main node's address, expanded by the shell on each node.
MAIN_IP_PLACEHOLDER = "$STUDIO_MAIN_IP"
_DISTRIBUTED_TYPE = {"ddp": "MULTI_GPU", "fsdp": "FSDP", "deepspeed": "DEEPSPEED"}
_MIXED = {"auto": "bf16", "fp32": "no", "bf16": "bf16", "fp16": "fp16"}


def accelerate_config(cfg: RunConfig, nodes: int = 1, gpus_per_node: int = 1, cpu: bool = False,
                      main_process_ip: str = MAIN_IP_PLACEHOLDER) -> dict:
    """The accelerate config (as a mapping) for ``nodes`` x ``gpus_per_node`` processes.

    Args:
        cfg: the run; ``cfg.distributed`` picks DDP, FSDP or DeepSpeed and the port.
        nodes: machines taking part.
        gpus_per_node: processes per machine (one per GPU).
        cpu: CPU processes (tests and machines without GPUs), joined over gloo. accelerate runs
            them as DDP whatever the strategy; with ``fsdp`` the SFT recipe shards the model
            itself (:mod:`studio.worker.sharding`); DeepSpeed needs GPUs and runs as DDP.
        main_process_ip: the main node's address (unused on one machine).
    """
    dist = cfg.distributed
    strategy = "ddp" if cpu else dist.strategy
    out = {
        "compute_environment": "LOCAL_MACHINE",
        # CPU processes too are started by accelerate's torchrun launcher (type MULTI_GPU): its
        # --cpu launcher starts a single process. Each worker then asks for the CPU (use_cpu, and
        # train.device=cpu), and accelerate joins them over gloo as MULTI_CPU.
        "distributed_type": _DISTRIBUTED_TYPE[strategy],
        "num_machines": nodes,
        "num_processes": nodes * gpus_per_node,
        "machine_rank": 0,
        "main_training_function": "main",
        "mixed_precision": "no" if cpu else _MIXED[cfg.train.precision],
        "use_cpu": cpu,
        "rdzv_backend": "static",
        "same_network": True,
        "main_process_port": dist.main_process_port,
    }
    if nodes > 1:
        out["main_process_ip"] = main_process_ip
    if not cpu:
        out["gpu_ids"] = "all"
    if strategy == "fsdp":
        out["fsdp_config"] = _fsdp_config(cfg)
    elif strategy == "deepspeed":
        out["deepspeed_config"] = _deepspeed_config(cfg)
    return out


def _fsdp_config(cfg: RunConfig) -> dict:
    # FSDP2; without a layer class accelerate wraps the model's own _no_split_modules (its decoder layers).
    return {
        "fsdp_version": 2,
        "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "fsdp_reshard_after_forward": True,
        "fsdp_state_dict_type": "SHARDED_STATE_DICT",
        "fsdp_cpu_ram_efficient_loading": True,
        "fsdp_offload_params": False,
        "fsdp_activation_checkpointing": bool(cfg.train.gradient_checkpointing),
    }


def _deepspeed_config(cfg: RunConfig) -> dict:
    stage = cfg.distributed.deepspeed_stage
    out = {
        "zero_stage": stage,
        "gradient_accumulation_steps": cfg.train.grad_accum,
        "gradient_clipping": cfg.train.max_grad_norm,
        "offload_optimizer_device": "none",
        "offload_param_device": "none",
        "zero3_init_flag": stage == 3,
    }
    if stage == 3:
        # gather the full weights on save so final/ holds a loadable model, not shards
        out["zero3_save_16bit_model"] = True
    return out


def write_accelerate_config(cfg: RunConfig, run_dir: str | Path, nodes: int = 1, gpus_per_node: int = 1,
                            cpu: bool = False, main_process_ip: str = MAIN_IP_PLACEHOLDER) -> Path:
    """Write ``RUN_DIR/accelerate_config.yaml`` and return its path."""
    path = Path(run_dir) / CONFIG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    data = accelerate_config(cfg, nodes, gpus_per_node, cpu=cpu, main_process_ip=main_process_ip)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def launch_commands(cfg: RunConfig, run_dir: str | Path, nodes: int = 1, gpus_per_node: int = 1,
                    cpu: bool = False, main_process_ip: str = MAIN_IP_PLACEHOLDER, write: bool = True) -> list[str]:
    """The exact ``accelerate launch`` command to run on each machine, machine 0 first.

    Also writes the accelerate config into the run folder (``write=False`` only computes).
    The flags repeat what the config file says, so a reader of the command alone sees the
    layout; on a cluster, set ``STUDIO_MAIN_IP`` to machine 0's address on every machine.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_NAME
    if write:
        write_accelerate_config(cfg, run_dir, nodes, gpus_per_node, cpu=cpu, main_process_ip=main_process_ip)
    return [_command(cfg, run_dir, config_path, nodes, gpus_per_node, rank, main_process_ip)
            for rank in range(nodes)]


def _command(cfg: RunConfig, run_dir: Path, config_path: Path, nodes: int, gpus_per_node: int, rank: int,
             main_process_ip: str) -> str:
    parts = ["accelerate", "launch", "--config_file", shlex.quote(str(config_path))]
    parts += ["--num_machines", str(nodes), "--num_processes", str(nodes * gpus_per_node)]
    if nodes > 1:
        parts += ["--machine_rank", str(rank), "--main_process_ip", _shell_value(main_process_ip)]
    parts += ["--main_process_port", str(cfg.distributed.main_process_port)]
    parts += ["-m", "studio.worker", shlex.quote(str(run_dir))]
    return " ".join(parts)


def _shell_value(value: str) -> str:
    """Quote a literal address, but leave a ``$VARIABLE`` for the shell to expand."""
    if value.startswith("$") and value[1:].replace("_", "").isalnum():
        return f'"{value}"'
    return shlex.quote(value)


def launched_with(run_dir: str | Path) -> tuple[int, bool]:
    """``(processes, cpu)`` of the accelerate config a run was started with; ``(1, False)`` for
    a run of one process. A resume must use as many processes as the checkpoint was written by."""
    path = Path(run_dir) / CONFIG_NAME
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return 1, False
    if not isinstance(data, dict):
        return 1, False
    return max(1, int(data.get("num_processes") or 1)), bool(data.get("use_cpu"))


def cpu_processes(cfg: RunConfig) -> bool:
    """Whether the processes of a multi-process run go on the CPU: ``train.device`` says cpu, or
    it says auto and this machine has no NVIDIA or AMD GPU (Apple's MPS runs one process only)."""
    if cfg.train.device != "auto":
        return cfg.train.device == "cpu"
    from studio.core import accelerator

    info = accelerator.probe()
    return not (accelerator.nvidia_driver(info) or accelerator.rocm_gpu(info))
