"""Shard a corpus across processes (and GPUs) launched by PyTorch's ``torchrun``, and merge the shards.

    torchrun --standalone --nproc_per_node 2 -m elmo_tasks.cli embed-file corpus.txt vectors.hdf5

Each rank embeds one contiguous block of lines (``shard_indices``) into its own shard file next
to the output; after a barrier, rank 0 merges the shards into the one HDF5 output (under a
temporary name, renamed at the end) and removes them. The merged file holds the same datasets as
a single-process run (stateless embeddings do not depend on the batch they ran in).

The feature cache (``elmo-tasks cache``, ``elmo_tasks.features.cache``) shards the same way but
writes straight into one preallocated array: each rank fills its own rows.

The pieces:

* ``current_rank()``: this process's rank, world size and local rank, from torchrun's environment;
* ``shard_indices(n, rank, world)``: the items rank ``rank`` handles;
* ``barrier()`` / ``broadcast_from_main(value)`` / ``finish()``: a gloo process group, created on
  first use; all three are no-ops in a single process;
* ``shard_path(output, rank, world)`` and ``merge_hdf5_shards(shards, output, json_maps=...)``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from elmo_tasks.atomic import atomic_path
from elmo_tasks.errors import UserError
from elmo_tasks.paths import check_input_file, check_output_file

BARRIER_TIMEOUT = timedelta(hours=12)  # a barrier waits for the slowest shard to finish


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current_rank() -> Rank:
    """This process's place in a torchrun launch (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); 0 of 1 otherwise."""
    try:
        rank = Rank(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError:
        raise UserError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (they are set by torchrun)") from None
    if rank.world < 1 or not 0 <= rank.rank < rank.world:
        raise UserError(f"invalid torchrun environment: RANK={rank.rank}, WORLD_SIZE={rank.world}")
    return rank


def shard_indices(n: int, rank: int, world: int) -> range:
    """The contiguous block of ``range(n)`` that ``rank`` of ``world`` handles; the blocks differ in
    size by at most one and, in rank order, cover ``range(n)`` exactly once."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in a world of {world}")
    return range(rank * n // world, (rank + 1) * n // world)


def shard_path(output: str | Path, rank: int, world: int) -> Path:
    """Where rank ``rank`` writes its part of ``output`` (same folder, so the merge stays on one disk)."""
    output = Path(output)
    return output.with_name(f"{output.name}.shard-{rank:05d}-of-{world:05d}")


def _process_group() -> bool:
    """Join the gloo group (once); False in a single process. Gloo works with or without GPUs."""
    import torch.distributed as dist

    if current_rank().world == 1:
        return False
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo", timeout=BARRIER_TIMEOUT)
    return True


def barrier() -> None:
    """Wait for every rank (a no-op without torchrun)."""
    import torch.distributed as dist

    if _process_group():
        dist.barrier()


def broadcast_from_main(value):
    """Rank 0's ``value`` on every rank (any picklable object), so that all ranks take the same branch."""
    import torch.distributed as dist

    if not _process_group():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def finish() -> None:
    """Tear the process group down (call once at the end of a distributed job)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def device_for(rank: Rank):
    """``cuda:LOCAL_RANK`` when GPUs are present, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", rank.local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def read_json_dataset(handle, name: str) -> dict:
    """A JSON object stored as a string dataset, of shape (1,) or scalar."""
    raw = handle[name][()]
    if not isinstance(raw, (bytes, str)):
        raw = raw[0]
    return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))


def merge_hdf5_shards(shards: Sequence[str | Path], output: str | Path, json_maps: Sequence[str] = ()) -> None:
    """Copy every top-level dataset and group of ``shards`` into one new HDF5 file at ``output``.

    A name may appear in one shard only, except the datasets named in ``json_maps``: JSON objects
    (stored as shape-(1,) strings) that are merged key by key, the last shard's value winning, as a
    single process reading the shards' inputs in order keeps the last occurrence. Top-level
    attributes are taken from the first shard. Written under a temporary name, then renamed.
    """
    import h5py

    merged_maps: dict[str, dict] = {name: {} for name in json_maps}
    seen: dict[str, Path] = {}
    with atomic_path(output) as tmp, h5py.File(tmp, "w") as target:
        for number, shard in enumerate(shards):
            shard = Path(shard)
            if not shard.is_file():
                raise UserError(f"shard file not found: {shard}")
            with h5py.File(shard, "r") as source:
                if number == 0:
                    for key, value in source.attrs.items():
                        target.attrs[key] = value
                for name in source:
                    if name in merged_maps:  # shards in line order: a later line wins, as in one process
                        merged_maps[name].update(read_json_dataset(source, name))
                        continue
                    if name in seen:
                        raise UserError(f"'{name}' is in both {seen[name]} and {shard}: shards must not overlap")
                    seen[name] = shard
                    source.copy(source[name], target, name=name)
        for name, mapping in merged_maps.items():
            target.create_dataset(name, (1,), dtype=h5py.string_dtype())[0] = json.dumps(mapping)


def embed_file_sharded(embedder, input_file: str | Path, output_file: str | Path, layers: str = "all",
                       progress: bool = False, rank: Rank | None = None, sentence_index: bool = True) -> int:
    """This rank's share of ``Embedder.embed_file``; rank 0 then merges every shard into ``output_file``.

    Returns the number of sentences this rank embedded.
    """
    # the embedder (torch) is imported when a sharded run starts, not when the CLI imports this module
    from elmo_tasks.embedder import count_lines

    rank = rank or current_rank()
    if embedder.bilm.stateful:
        raise UserError("--stateful carries states from batch to batch in file order, so it cannot be "
                        "split across processes: run it without torchrun")
    input_path = check_input_file(input_file, "input file")
    output_path = check_output_file(output_file, "output file", inputs=[input_path])
    lines = shard_indices(count_lines(input_path), rank.rank, rank.world)
    mine = shard_path(output_path, rank.rank, rank.world)
    count = embedder.embed_file(input_path, mine, layers=layers, progress=progress and rank.is_main, lines=lines,
                                sentence_index=sentence_index)
    barrier()  # every shard is complete
    if rank.is_main:
        shards = [shard_path(output_path, r, rank.world) for r in range(rank.world)]
        try:
            merge_hdf5_shards(shards, output_path, json_maps=["sentence_to_index"] if sentence_index else [])
        finally:
            for shard in shards:
                shard.unlink(missing_ok=True)
    return count
