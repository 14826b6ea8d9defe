"""The processes of a ``lutgen train`` run: one, or several under ``torchrun``, and their devices."""

from __future__ import annotations

import os
from dataclasses import dataclass

from lutgen.devices import check_device_name
from lutgen.errors import OptionError


def world_size() -> int:
    """Processes of this run (``torchrun`` sets ``WORLD_SIZE``); 1 without torchrun."""
    return max(1, _environment_int("WORLD_SIZE", 1))


def _environment_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, str(default)))
    except ValueError:
        return default


@dataclass
class Processes:
    """This process's place in the run: rank, number of processes, device."""

    rank: int
    world: int
    device: object  # torch.device
    distributed: bool

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def shared(self, value: int) -> int:
        """``value`` as the first process has it (``value`` itself without torchrun)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def start_processes(device_name: str) -> Processes:
    """Pick the device and, under ``torchrun``, join the process group (NCCL on CUDA, gloo on the CPU).

    Raises:
        OptionError: the device is not available, or cannot serve this run's processes (one sentence).
    """
    from lutgen.devices import pick_device

    name = check_device_name(device_name)
    world = world_size()
    if world == 1:
        return Processes(0, 1, pick_device(name), False)
    import torch
    import torch.distributed as dist

    local_world = _environment_int("LOCAL_WORLD_SIZE", world)
    device = _process_device(name, _environment_int("LOCAL_RANK", 0), local_world)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Processes(dist.get_rank(), dist.get_world_size(), device, True)


def _process_device(name: str, local_rank: int, local_world: int):
    """The device of the process ``local_rank`` of ``local_world`` on this machine, for ``--device name``.

    ``cuda``: GPU ``local_rank``; ``cuda:N``: GPU N, for one process per machine; ``auto``: ``cuda``
    where CUDA is available, else the CPU; ``mps`` is refused (its processes cannot share it).
    """
    import torch

    from lutgen.devices import pick_device

    if name == "mps":
        raise OptionError("--device mps cannot be used under torchrun, since several processes cannot share "
                          "the MPS device; use --device cpu or run without torchrun")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return pick_device("cpu")
    if name == "cuda":
        pick_device("cuda")  # one sentence when there is no CUDA GPU
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise OptionError(f"torchrun started {local_world} processes on this machine, but it has {count} "
                              f"CUDA GPU(s); use --nproc-per-node {count} or fewer")
        return pick_device(f"cuda:{local_rank}")
    if local_world > 1:
        raise OptionError(f"--device {name} names one GPU, but torchrun started {local_world} processes on this "
                          "machine; use --device cuda (process i takes GPU i)")
    return pick_device(name)
