"""Data-parallel pretraining under ``torchrun``: each process trains on its share of every batch's rows.

    torchrun --standalone --nproc_per_node 2 -m elmo_tasks.cli pretrain CONFIG.yaml --out DIR

Every process builds the same batches (same seed) of the global ``batch_size`` rows and keeps rows
``[r * B / N, (r + 1) * B / N)``, with those rows' LSTM states. The loss is normalised by the target
count of the whole batch (summed over processes), and the gradients are summed over processes
before clipping and the update, so N processes with a global batch B compute what one process with
batch B computes (the sampled softmax's negatives come from a generator seeded alike everywhere).
Rank 0 evaluates, logs, writes checkpoints (with every process's states and random streams) and
exports. gloo on CPUs, NCCL on GPUs (``cuda:LOCAL_RANK``). One process: every method is a no-op.
"""

from __future__ import annotations

import torch

from elmo_tasks.distributed import BARRIER_TIMEOUT, Rank, current_rank
from elmo_tasks.errors import UserError


class DataParallel:
    def __init__(self, device: torch.device, rank: Rank | None = None) -> None:
        rank = rank or current_rank()
        self.rank, self.world = rank.rank, rank.world
        self.device = device
        if self.world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                backend = "nccl" if device.type == "cuda" else "gloo"
                dist.init_process_group(backend=backend, timeout=BARRIER_TIMEOUT)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def rows(self, batch_size: int, source: str) -> slice:
        """This process's rows of a global batch."""
        if batch_size % self.world:
            raise UserError(f"{source}: training.batch_size ({batch_size}) must be a multiple of the number of "
                            f"processes ({self.world}) for data-parallel training")
        share = batch_size // self.world
        return slice(self.rank * share, (self.rank + 1) * share)

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over processes, in place."""
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(tensor)
        return tensor

    def sum_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Every gradient summed over processes (one flat all-reduce)."""
        if self.world == 1:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = self.sum_(torch.cat([g.reshape(-1) for g in grads]))
        for p, piece in zip(params, flat.split([g.numel() for g in grads])):
            p.grad = piece.view_as(p).clone() if p.grad is None else p.grad.copy_(piece.view_as(p))

    def any(self, *flags: bool) -> list[bool]:
        """Each flag true on some process (so that every process takes the same branch)."""
        if self.world == 1:
            return list(flags)
        values = self.sum_(torch.tensor([float(f) for f in flags], device=self._comm_device()))
        return [bool(v > 0) for v in values.tolist()]

    def gather_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every process's rows, concatenated in rank order (the global batch's rows)."""
        if self.world == 1:
            return tensor
        import torch.distributed as dist

        local = tensor.contiguous().to(self._comm_device())
        pieces = [torch.empty_like(local) for _ in range(self.world)]
        dist.all_gather(pieces, local)
        return torch.cat(pieces).to(tensor.device)

    def gather_objects(self, value) -> list:
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        out = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def finish(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()

    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")


def device_for_rank(device: torch.device, rank: Rank | None = None) -> torch.device:
    """``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun (and that GPU the current one)."""
    rank = rank or current_rank()
    if device.type == "cuda" and rank.world > 1:
        device = torch.device("cuda", rank.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device
