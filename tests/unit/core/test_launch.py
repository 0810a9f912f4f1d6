"""Launch commands and accelerate config files for several GPUs and machines."""

from __future__ import annotations

import yaml

from studio.core import config as config_mod
from studio.core.launch import accelerate_config, launch_commands


def test_two_nodes_of_four_gpus_exact_commands(tmp_path):
    cfg = config_mod.from_dict({"distributed": {"strategy": "ddp", "main_process_port": 29555}})
    run = tmp_path / "run"
    cmds = launch_commands(cfg, run, nodes=2, gpus_per_node=4)
    assert cmds == [
        f"accelerate launch --config_file {run}/accelerate_config.yaml --num_machines 2 --num_processes 8 "
        f'--machine_rank 0 --main_process_ip "$STUDIO_MAIN_IP" --main_process_port 29555 -m studio.worker {run}',
        f"accelerate launch --config_file {run}/accelerate_config.yaml --num_machines 2 --num_processes 8 "
        f'--machine_rank 1 --main_process_ip "$STUDIO_MAIN_IP" --main_process_port 29555 -m studio.worker {run}',
    ]
    written = yaml.safe_load((run / "accelerate_config.yaml").read_text())
    assert written["distributed_type"] == "MULTI_GPU"
    assert (written["num_machines"], written["num_processes"], written["main_process_port"]) == (2, 8, 29555)
    assert written["main_process_ip"] == "$STUDIO_MAIN_IP"


def test_single_node_and_literal_address(tmp_path):
    cfg = config_mod.RunConfig()
    run = tmp_path / "my run"
    (one,) = launch_commands(cfg, run, nodes=1, gpus_per_node=2, write=False)
    assert one == (f"accelerate launch --config_file '{run}/accelerate_config.yaml' --num_machines 1 "
                   f"--num_processes 2 --main_process_port 29500 -m studio.worker '{run}'")
    assert not run.exists()
    cmds = launch_commands(cfg, tmp_path, nodes=2, gpus_per_node=1, main_process_ip="10.0.0.5", write=False)
    assert "--main_process_ip 10.0.0.5" in cmds[1]


def test_fsdp_and_deepspeed_sections():
    fsdp = accelerate_config(config_mod.from_dict({"distributed": {"strategy": "fsdp"},
                                                   "train": {"gradient_checkpointing": True}}), 1, 8)
    assert fsdp["distributed_type"] == "FSDP"
    assert fsdp["fsdp_config"]["fsdp_version"] == 2 and fsdp["fsdp_config"]["fsdp_activation_checkpointing"]
    ds = accelerate_config(config_mod.from_dict({"distributed": {"strategy": "deepspeed", "deepspeed_stage": 3},
                                                 "train": {"grad_accum": 4}}), 2, 8)
    assert ds["distributed_type"] == "DEEPSPEED"
    assert ds["deepspeed_config"]["zero_stage"] == 3 and ds["deepspeed_config"]["gradient_accumulation_steps"] == 4
    assert ds["deepspeed_config"]["zero3_save_16bit_model"] is True
    cpu = accelerate_config(config_mod.RunConfig(), 1, 2, cpu=True)
    # torchrun starts the CPU processes (accelerate's --cpu launcher would start only one)
    assert cpu["distributed_type"] == "MULTI_GPU" and cpu["use_cpu"] and cpu["mixed_precision"] == "no"
    assert "gpu_ids" not in cpu


def test_a_resume_reads_the_process_count_the_run_was_launched_with(tmp_path):
    from studio.core.launch import launched_with, write_accelerate_config

    assert launched_with(tmp_path) == (1, False)  # a run of one process writes no accelerate config
    write_accelerate_config(config_mod.from_dict({"distributed": {"strategy": "fsdp"}}), tmp_path, gpus_per_node=2,
                            cpu=True)
    assert launched_with(tmp_path) == (2, True)
    (tmp_path / "accelerate_config.yaml").write_text("- not a mapping\n")
    assert launched_with(tmp_path) == (1, False)


def test_several_processes_go_on_the_cpu_when_asked_or_when_auto_finds_no_gpu(monkeypatch):
    from studio.core import accelerator
    from studio.core.launch import cpu_processes

    def on(device):
        return config_mod.from_dict({"train": {"device": device}})

    assert cpu_processes(on("cpu")) and not cpu_processes(on("cuda"))
    monkeypatch.setattr(accelerator, "probe", lambda: accelerator.GpuInfo())
    assert cpu_processes(on("auto"))
    gpu = accelerator.GpuInfo(nvidia_smi="NVIDIA H100 80GB HBM3, 81559 MiB, 570.86.15, 9.0\n")
    monkeypatch.setattr(accelerator, "probe", lambda: gpu)
    assert not cpu_processes(on("auto"))
