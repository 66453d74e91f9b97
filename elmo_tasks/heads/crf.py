"""A linear-chain CRF: the tagger's structured output layer (negative log-likelihood + Viterbi).

With ``allowed`` (a (K, K) bool matrix from :func:`bio_transitions`) impossible transitions such
as ``O -> I-PER`` get a large negative score, so decoding never produces them.
"""

from __future__ import annotations

import torch
from torch import nn

_NEG = -1e4


def bio_transitions(labels: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(allowed transitions (K, K), allowed starts (K,)) for BIO tags: I-X only after B-X or I-X."""
    k = len(labels)
    allowed = torch.ones(k, k, dtype=torch.bool)
    start = torch.ones(k, dtype=torch.bool)
    for j, tag in enumerate(labels):
        if tag.startswith("I-"):
            start[j] = False
            for i, prev in enumerate(labels):
                allowed[i, j] = prev[2:] == tag[2:] and prev[:2] in ("B-", "I-")
    return allowed, start


class CRF(nn.Module):
    def __init__(self, num_tags: int, allowed: torch.Tensor | None = None, allowed_start: torch.Tensor | None = None) -> None:
        super().__init__()
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))
        penalty = torch.zeros(num_tags, num_tags)
        start_penalty = torch.zeros(num_tags)
        if allowed is not None:
            penalty[~allowed] = _NEG
        if allowed_start is not None:
            start_penalty[~allowed_start] = _NEG
        self.register_buffer("penalty", penalty, persistent=False)
        self.register_buffer("start_penalty", start_penalty, persistent=False)

    def _scores(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transitions + self.penalty, self.start + self.start_penalty

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood; emissions (B, T, K), tags (B, T) (any value at padding), mask (B, T).

        Sentences must be left-aligned (mask true for a prefix); empty sentences count 0. Computed in
        float32 (autocast off): the path scores are sums over a sentence.
        """
        with torch.autocast(emissions.device.type, enabled=False):
            return self._nll(emissions.float(), tags, mask)

    def _nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        trans, start = self._scores()
        b, t, _ = emissions.shape
        tags = tags.clamp_min(0)
        maskf = mask.to(emissions.dtype)
        rows = torch.arange(b, device=emissions.device)
        # score of the gold path (vectorised over positions)
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
        moves = trans[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
        score = start[tags[:, 0]] + (emitted * maskf).sum(1) + (moves * maskf[:, 1:]).sum(1)
        last = tags[rows, (mask.sum(1) - 1).clamp_min(0)]
        score = score + self.end[last]
        # log partition
        alpha = start.unsqueeze(0) + emissions[:, 0]
        for i in range(1, t):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + trans.unsqueeze(0), dim=1) + emissions[:, i]
            alpha = torch.where(mask[:, i:i + 1], nxt, alpha)
        log_z = torch.logsumexp(alpha + self.end.unsqueeze(0), dim=1)
        nonempty = mask[:, 0]
        return ((log_z - score) * nonempty).sum() / nonempty.sum().clamp_min(1)

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """The best tag sequence of each sentence (Viterbi), trimmed to its length."""
        trans, start = self._scores()
        b, t, _ = emissions.shape
        score = start.unsqueeze(0) + emissions[:, 0]
        history = []
        for i in range(1, t):
            total = score.unsqueeze(2) + trans.unsqueeze(0)  # (B, K_prev, K)
            best, index = total.max(dim=1)
            nxt = best + emissions[:, i]
            score = torch.where(mask[:, i:i + 1], nxt, score)
            history.append(index)
        score = score + self.end.unsqueeze(0)
        lengths = mask.sum(1).tolist()
        out = []
        for row in range(b):
            n = lengths[row]
            if n == 0:
                out.append([])
                continue
            tag = int(score[row].argmax())
            path = [tag]
            for i in range(n - 2, -1, -1):
                tag = int(history[i][row, tag])
                path.append(tag)
            out.append(path[::-1])
        return out
