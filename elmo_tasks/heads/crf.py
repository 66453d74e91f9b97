"""A linear-chain CRF: the tagger's structured output layer (negative log-likelihood + Viterbi).

With ``allowed`` (a (K, K) bool matrix from :func:`bio_transitions`) impossible transitions such
as ``O -> I-PER`` get a large negative score, so decoding never produces them. The log partition runs
the forward algorithm as one small product per position in float64 (shifted exponentials: exact
where a log-sum-exp over (B, K, K) is) and its gradient is the forward-backward marginals
(:class:`_LogPartition`), in place of autograd's graph of T log-sum-exps.
"""

from __future__ import annotations

import torch
from torch import nn

_NEG = -1e4
_TINY = 1e-300  # a float64 sum below it is a state no path reaches (a forbidden move's e^-1e4)


def _forward_scores(emissions: torch.Tensor, trans: torch.Tensor, start: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(T, B, K) float64 forward scores alpha: log-sum over paths ending in tag k at position t (kept
    past a sentence's end). Each step is (B, K) @ (K, K) on exponentials shifted by the row's maximum
    and the column's, so nothing over- or underflows that a log-sum-exp would keep."""
    b, t, k = emissions.shape
    column_top = trans.max(dim=0).values  # (K,)
    moves = (trans - column_top).exp()
    alphas = emissions.new_empty(t, b, k)
    alpha = start + emissions[:, 0]
    alphas[0] = alpha
    for i in range(1, t):
        top = alpha.max(dim=1, keepdim=True).values
        step = ((alpha - top).exp() @ moves).clamp_min(_TINY).log() + top + column_top + emissions[:, i]
        alpha = torch.where(mask[:, i:i + 1], step, alpha)
        alphas[i] = alpha
    return alphas


def _backward_scores(emissions: torch.Tensor, trans: torch.Tensor, end: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(T, B, K) float64 backward scores beta: log-sum over the rest of the path after tag k at t
    (``end`` at a sentence's last position and past it)."""
    b, t, k = emissions.shape
    row_top = trans.max(dim=1).values  # (K,)
    moves_t = (trans - row_top.unsqueeze(1)).exp().T  # (K_next, K)
    betas = emissions.new_empty(t, b, k)
    beta = end.expand(b, k)
    betas[t - 1] = beta
    for i in range(t - 1, 0, -1):
        after = emissions[:, i] + beta
        top = after.max(dim=1, keepdim=True).values
        step = ((after - top).exp() @ moves_t).clamp_min(_TINY).log() + top + row_top
        beta = torch.where(mask[:, i:i + 1], step, beta)
        betas[i - 1] = beta
    return betas


def _log_partition(alphas: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """(B,) log Z from the forward scores (T, B, K) and the end scores."""
    return torch.logsumexp(alphas[-1] + end, dim=1)


def _posteriors(alphas: torch.Tensor, betas: torch.Tensor, log_z: torch.Tensor) -> torch.Tensor:
    """(T, B, K) probability of each tag at each position (past a sentence's end: its last tag's)."""
    return torch.exp(alphas + betas - log_z.view(1, -1, 1))


class _LogPartition(torch.autograd.Function):
    """log Z per sentence (B,) from emissions (B, T, K), transitions, start and end scores; its
    backward gives each score its posterior marginal (forward-backward) times the incoming gradient."""

    @staticmethod
    def forward(ctx, emissions, trans, start, end, mask):
        e, tr, st, en = (x.double() for x in (emissions, trans, start, end))
        alphas = _forward_scores(e, tr, st, mask)
        log_z = _log_partition(alphas, en)
        ctx.save_for_backward(e, tr, en, mask, alphas, log_z)
        return log_z.to(emissions.dtype)

    @staticmethod
    def backward(ctx, grad):
        e, tr, en, mask, alphas, log_z = ctx.saved_tensors
        betas = _backward_scores(e, tr, en, mask)
        weight = grad.double().view(1, -1, 1)  # (1, B, 1)
        real = mask.T.unsqueeze(2)  # (T, B, 1)
        unary = _posteriors(alphas, betas, log_z) * weight * real  # (T, B, K)
        grad_emissions = unary.transpose(0, 1)
        grad_start = unary[0].sum(0)
        grad_end = (torch.exp(alphas[-1] + en - log_z.unsqueeze(1)) * weight[0]).sum(0)
        # transitions: sum over the real moves (b, i-1 -> i) of exp(alpha_{i-1}(x) + trans(x, y) + e_i(y) +
        # beta_i(y) - log Z), taken in float64 on the moves only (no padding), as one weighted sum
        moves = mask[:, 1:].T  # (T-1, B)
        before = (alphas[:-1] - log_z.view(1, -1, 1))[moves]  # (N, K)
        after = (e[:, 1:].transpose(0, 1) + betas[1:])[moves]  # (N, K)
        pair = before.unsqueeze(2) + after.unsqueeze(1)
        pair += tr
        grad_trans = (weight.view(1, -1).expand(moves.shape)[moves] @ pair.exp_().flatten(1)).view_as(tr)
        dtype = grad.dtype
        return grad_emissions.to(dtype), grad_trans.to(dtype), grad_start.to(dtype), grad_end.to(dtype), None


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
        b = emissions.shape[0]
        tags = tags.clamp_min(0)
        maskf = mask.to(emissions.dtype)
        rows = torch.arange(b, device=emissions.device)
        # score of the gold path (vectorised over positions)
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
        moves = trans[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
        score = start[tags[:, 0]] + (emitted * maskf).sum(1) + (moves * maskf[:, 1:]).sum(1)
        last = tags[rows, (mask.sum(1) - 1).clamp_min(0)]
        score = score + self.end[last]
        log_z = _LogPartition.apply(emissions, trans, start, self.end, mask)
        nonempty = mask[:, 0]
        return ((log_z - score) * nonempty).sum() / nonempty.sum().clamp_min(1)

    @torch.no_grad()
    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, K) float32 posterior probability of each tag at each position (forward-backward)."""
        trans, start = self._scores()
        e, trans, start, end = (x.double() for x in (emissions.float(), trans, start, self.end))
        alphas = _forward_scores(e, trans, start, mask)
        return _posteriors(alphas, _backward_scores(e, trans, end, mask), _log_partition(alphas, end)).transpose(0, 1).float()

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
