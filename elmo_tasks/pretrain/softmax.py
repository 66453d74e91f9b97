"""The shared output softmax: full (evaluation, small vocabularies) and sampled (large ones).

Sampled softmax follows the recipe (§10.3): one set of negatives per step for all rows, drawn
without replacement from the log-uniform (Zipfian) distribution over ids [0, V),
P(k) = log((k+2)/(k+1)) / log(V+1); the true class and the sampled classes are corrected by the log
of their expected counts; a sampled class that equals a row's target (an accidental hit) is
removed from that row. The vocabulary must be sorted by descending frequency for this to fit.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from elmo_tasks.atomic import atomic_path
from elmo_tasks.bilm.weights import SIZE_LIMITS
from elmo_tasks.errors import UserError
from elmo_tasks.model_folder import SOFTMAX_NAME  # noqa: F401  (imported from here by the trainer and tests)

IGNORE = -1  # target id of positions that are not predicted (padding)


class LogUniformSampler:
    """Unique draws from P(k) = log((k+2)/(k+1)) / log(V+1), with their expected counts."""

    def __init__(self, vocab_size: int, num_sampled: int) -> None:
        if num_sampled >= vocab_size:
            raise ValueError(f"num_sampled ({num_sampled}) must be smaller than the vocabulary ({vocab_size})")
        self.vocab_size = vocab_size
        self.num_sampled = num_sampled
        self.log_range = math.log(vocab_size + 1)

    def probability(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.double()
        return torch.log((ids + 2.0) / (ids + 1.0)) / self.log_range

    def draw(self, generator: torch.Generator) -> tuple[torch.Tensor, int]:
        """``num_sampled`` distinct ids (in draw order) and the number of draws it took."""
        chunk = max(2 * self.num_sampled, 1024)
        draws = torch.empty(0, dtype=torch.long)
        while True:
            u = torch.rand(chunk, generator=generator, dtype=torch.float64)
            new = (torch.exp(u * self.log_range).floor().long() - 1).clamp_(0, self.vocab_size - 1)
            draws = torch.cat([draws, new])
            unique, inverse = torch.unique(draws, return_inverse=True)
            if len(unique) >= self.num_sampled:
                break
        # the first occurrence of every distinct id, in draw order
        first = torch.full((len(unique),), len(draws), dtype=torch.long)
        first.scatter_reduce_(0, inverse, torch.arange(len(draws)), reduce="amin")
        order = torch.argsort(first)[: self.num_sampled]
        tries = int(first[order[-1]]) + 1
        return unique[order], tries

    def expected_count(self, ids: torch.Tensor, tries: int) -> torch.Tensor:
        """How often ``ids`` are expected among ``tries`` draws: 1 - (1 - P)^tries (TF's formula)."""
        p = self.probability(ids)
        return -torch.expm1(tries * torch.log1p(-p))


class Softmax(nn.Module):
    """W (V, P) and b (V), shared by the forward and backward LMs."""

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab_size, dim))
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        nn.init.normal_(self.weight, std=1.0 / math.sqrt(dim))

    @property
    def vocab_size(self) -> int:
        return self.weight.shape[0]

    def full_nll(self, hidden: torch.Tensor, targets: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """Negative log-likelihood per position (N,) under the full softmax; 0 where target is IGNORE."""
        out = []
        for start in range(0, hidden.shape[0], chunk):
            h = hidden[start : start + chunk].float()
            t = targets[start : start + chunk]
            logits = h @ self.weight.float().T + self.bias.float()
            nll = nn.functional.cross_entropy(logits, t.clamp(min=0), reduction="none")
            out.append(torch.where(t == IGNORE, torch.zeros_like(nll), nll))
        return torch.cat(out) if out else hidden.new_zeros(0)

    def sampled_nll(self, hidden: torch.Tensor, targets: torch.Tensor, sampler: LogUniformSampler,
                    generator: torch.Generator) -> torch.Tensor:
        """Sampled-softmax negative log-likelihood per position (N,); 0 where target is IGNORE."""
        sampled, tries = sampler.draw(generator)
        sampled = sampled.to(hidden.device)
        safe_targets = targets.clamp(min=0)
        log_q_true = torch.log(sampler.expected_count(safe_targets.cpu(), tries)).float().to(hidden.device)
        log_q_sampled = torch.log(sampler.expected_count(sampled.cpu(), tries)).float().to(hidden.device)
        h = hidden.float()
        w, b = self.weight.float(), self.bias.float()
        true_logits = (h * w[safe_targets]).sum(dim=1) + b[safe_targets] - log_q_true
        # bias and correction folded into the product: the (N, S) matrix is written once
        sampled_logits = torch.addmm(b[sampled] - log_q_sampled, h, w[sampled].T)
        # accidental hits: the sampled ids are distinct, so a row's target is at most one column;
        # those few entries are set to -1e30 in place (their gradient is then 0)
        column = torch.full((self.vocab_size,), -1, dtype=torch.long, device=h.device)
        column[sampled] = torch.arange(len(sampled), device=h.device)
        hit = column[safe_targets]
        rows = (hit >= 0).nonzero().squeeze(1)
        sampled_logits.index_put_((rows, hit[rows]), torch.tensor(-1e30, device=h.device))
        # log(exp(true) + sum exp(sampled)) without concatenating the true column
        nll = torch.logaddexp(true_logits, torch.logsumexp(sampled_logits, dim=1)) - true_logits
        return torch.where(targets == IGNORE, torch.zeros_like(nll), nll)


def save_softmax(softmax: Softmax, path: Path, dtype: str = "float32") -> None:
    """The output softmax next to the exported biLM (for perplexity; ELMo users never need it)."""
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        handle.create_dataset("softmax/W", data=softmax.weight.detach().cpu().float().numpy().astype(dtype))
        handle.create_dataset("softmax/b", data=softmax.bias.detach().cpu().float().numpy().astype(dtype))


MAX_SOFTMAX_ROWS = 10_000_000  # words; with the width bound below, at most 4 GiB of float32
MAX_SOFTMAX_WIDTH = SIZE_LIMITS["lstm.projection_dim"]  # the biLM's own bound on its projection


def load_softmax(path: Path, width: int | None = None) -> Softmax:
    """The softmax that ``save_softmax`` wrote (float16 files load as float32). Its datasets' shapes and
    types are checked from the metadata before anything is read (``width``: the projection it must
    match); a file that is not such a softmax is a one-line error naming it."""
    import h5py

    if not Path(path).is_file():
        raise UserError(f"softmax file not found: {path} (pretraining writes it next to the exported model)")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"{path}: not a readable HDF5 file ({exc})") from None
    with handle:
        weight, bias = handle.get("softmax/W"), handle.get("softmax/b")
        if not isinstance(weight, h5py.Dataset) or not isinstance(bias, h5py.Dataset):
            raise UserError(f"{path}: datasets 'softmax/W' and 'softmax/b' are missing (not a softmax that "
                            "elmo-tasks pretrain wrote)")
        if weight.ndim != 2 or bias.ndim != 1 or bias.shape[0] != weight.shape[0]:
            raise UserError(f"{path}: 'softmax/W' {weight.shape} and 'softmax/b' {bias.shape} must be (V, P) and (V,)")
        rows, dim = weight.shape
        if not (1 <= rows <= MAX_SOFTMAX_ROWS and 1 <= dim <= MAX_SOFTMAX_WIDTH):
            raise UserError(f"{path}: softmax of {rows:,} x {dim:,}, outside this toolkit's limits "
                            f"({MAX_SOFTMAX_ROWS:,} words x {MAX_SOFTMAX_WIDTH:,})")
        if weight.dtype.kind != "f" or bias.dtype.kind != "f":
            raise UserError(f"{path}: the softmax holds {weight.dtype} / {bias.dtype}, not floating-point numbers")
        if width is not None and dim != width:
            raise UserError(f"{path}: softmax width {dim} does not match the model's projection {width}")
        weight = torch.from_numpy(np.asarray(weight, dtype=np.float32))
        bias = torch.from_numpy(np.asarray(bias, dtype=np.float32))
    softmax = Softmax(rows, dim)
    with torch.no_grad():
        softmax.weight.copy_(weight)
        softmax.bias.copy_(bias)
    return softmax
