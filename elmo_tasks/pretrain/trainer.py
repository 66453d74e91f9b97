"""Pretrain a biLM (the bilm-tf recipe, §10 of the reference note) and export it in the public format.

The model is ``elmo_tasks.bilm.model.BiLM`` itself; training calls its parts directly: the token
encoder on the distinct tokens of a batch, then both directions' LSTM stacks over (B, T, P) windows
with the states carried in (stateful) or reset where a sentence starts (per_sentence). The two
directions share the token encoder and the softmax; the loss is the mean of their mean negative
log-likelihoods, and the gradients are those of (loss x unroll_steps), as the recipe takes them.
``training.amp`` runs the products in bfloat16 where the device has bfloat16 units (float32 weights,
states and softmax). Under ``torchrun`` each process trains on its rows of every batch
(``data_parallel``). Evaluation keeps every random stream aside, so it never changes training.

A run folder holds ``checkpoint.pt`` (resume from it with ``resume=True``), ``log.jsonl`` (one
JSON record per log line and evaluation), ``vocab.txt``, ``config.json``, ``summary.json`` and, at
the end, ``model/`` with ``options.json`` + ``weights.hdf5`` (+ ``vocab.txt``, ``softmax.hdf5``).
"""

from __future__ import annotations

import json
import math
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from elmo_tasks import modules
from elmo_tasks.bilm.model import BiLM
from elmo_tasks.bilm.weights import save_bilm
from elmo_tasks.device import amp_fallback_message, bf16_supported, keep_freed_memory, preserved_rng, resolve_device
from elmo_tasks.errors import UserError
from elmo_tasks.pretrain.batches import Batch, Streams, build_streams, epoch_order, stream_length
from elmo_tasks.pretrain.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from elmo_tasks.pretrain.data_parallel import DataParallel, device_for_rank
from elmo_tasks.pretrain.evaluate import bilm_perplexity, heldout_streams
from elmo_tasks.pretrain.init_from import load_initial
from elmo_tasks.pretrain.initialise import bilm_options, init_bilm
from elmo_tasks.pretrain.settings import PretrainConfig
from elmo_tasks.pretrain.softmax import IGNORE, SOFTMAX_NAME, LogUniformSampler, Softmax, save_softmax
from elmo_tasks.pretrain.summary import run_summary
from elmo_tasks.pretrain.text_source import EncodedText, TypeTable, encode_dataset, encode_files
from elmo_tasks.pretrain.vocab import Vocabulary
from elmo_tasks.pretrain.windows import run_windows

State = tuple[torch.Tensor, torch.Tensor]
MAX_SKIPPED_IN_A_ROW = 20


# -- data ------------------------------------------------------------------------------------------


@dataclass
class Data:
    types: TypeTable
    train: EncodedText
    heldout: EncodedText | None
    vocab: Vocabulary
    target_map: np.ndarray
    char_table: np.ndarray


def load_data(config: PretrainConfig) -> Data:
    types = TypeTable()
    c = config.corpus
    if c.dataset is not None:
        d = c.dataset
        train = encode_dataset(d.path, d.name, d.data_files, d.split, d.column, types)
        heldout = (encode_dataset(d.path, d.name, d.data_files, d.heldout_split, d.column, types)
                   if d.heldout_split else None)
    else:
        train = encode_files(c.train, types)
        heldout = encode_files(c.heldout, types) if c.heldout else None
    if config.vocab.file:
        vocab = Vocabulary.load(config.vocab.file)
    else:
        vocab = Vocabulary.build(train, types, config.vocab.max_size, config.vocab.min_count)
    return Data(types, train, heldout, vocab, vocab.target_map(types), types.char_table())


# -- the trainer -----------------------------------------------------------------------------------


class Trainer:
    def __init__(self, config: PretrainConfig, out_dir: str | Path, device: str | None = None,
                 resume: bool = False, progress: bool = True, data: Data | None = None,
                 init_from: str | Path | None = None, threads: int | None = None) -> None:
        self.config = config
        self.out = Path(out_dir)
        t = config.training
        self.device = device_for_rank(resolve_device(device or t.device))
        if self.device.type == "cpu":
            keep_freed_memory()  # no page faults for the step's large buffers
        self.parallel = DataParallel(self.device)
        self.progress = progress and self.parallel.is_main
        if threads or t.threads:  # --threads, else training.threads, else as the caller set them
            torch.set_num_threads(threads or t.threads)
        if not resume and (self.out / CHECKPOINT_NAME).exists():
            raise UserError(f"{self.out} already holds a run ({CHECKPOINT_NAME}); pass --resume to continue it "
                            "or --out to start a new one elsewhere")
        if resume and init_from is not None:
            raise UserError("--init-from starts a new run from a model; --resume continues a run: give one of them")
        self.rows = self.parallel.rows(t.batch_size, config.source)  # this process's rows of every batch
        initial = load_initial(init_from, bilm_options(config), config.source) if init_from is not None else None
        self.init_from = str(init_from) if init_from is not None else None
        if initial is not None and initial.vocab_file is not None:
            config.vocab.file = str(initial.vocab_file)  # the softmax's rows are this vocabulary's words
        if resume and data is None and (self.out / "vocab.txt").is_file():
            config.vocab.file = str(self.out / "vocab.txt")  # the run's own vocabulary (it may come from --init-from)
        self.data = data or load_data(config)
        d = self.data
        self.per_sentence = t.state_mode == "per_sentence"
        self.amp = t.amp and bf16_supported(self.device)
        if t.amp and not self.amp:
            self._say(amp_fallback_message("training.amp", self.device))

        torch.manual_seed(t.seed)
        self.model = BiLM(bilm_options(config))
        init_bilm(self.model)
        self.softmax = Softmax(len(d.vocab), config.model.projection_dim)
        if initial is not None:
            self.model.load_state_dict(initial.model.state_dict())
            if initial.softmax is not None:
                if initial.softmax.vocab_size != len(d.vocab):
                    raise UserError(f"--init-from {initial.source}: softmax.hdf5 has {initial.softmax.vocab_size} rows "
                                    f"but vocab.txt {len(d.vocab)} words")
                self.softmax.load_state_dict(initial.softmax.state_dict())
        if self.parallel.rank > 0:
            torch.manual_seed(t.seed + 7919 * self.parallel.rank)  # its own dropout masks
        self.model.to(self.device)
        self.softmax.to(self.device)
        self.sampled = t.softmax == "sampled" or (t.softmax == "auto" and len(d.vocab) > t.n_negative_samples)
        if self.sampled and t.n_negative_samples >= len(d.vocab):
            raise UserError(f"{config.source}: training.n_negative_samples ({t.n_negative_samples}) must be smaller "
                            f"than the vocabulary ({len(d.vocab)}) for a sampled softmax; use softmax: full")
        self.sampler = LogUniformSampler(len(d.vocab), t.n_negative_samples) if self.sampled else None
        self.sample_generator = torch.Generator().manual_seed(t.seed + 1)  # the same on every process
        params = list(self.model.parameters()) + list(self.softmax.parameters())
        if t.optimizer == "adagrad":
            self.optimizer = torch.optim.Adagrad(params, lr=t.learning_rate, initial_accumulator_value=t.initial_accumulator)
        else:
            self.optimizer = torch.optim.Adam(params, lr=t.learning_rate)
        self.params = params

        self.batches_per_epoch = stream_length(d.train, self.per_sentence, t.unroll_steps) // (t.batch_size * t.unroll_steps)
        if self.batches_per_epoch == 0:
            build_streams(d.train, np.arange(1), d.target_map, t.batch_size, t.unroll_steps, self.per_sentence)  # raises
        self.total_steps = t.max_steps or max(1, math.ceil(t.epochs * self.batches_per_epoch))
        self.step = 0
        self.tokens_seen = 0
        self.elapsed = 0.0  # training wall time, summed over resumed runs
        self.history: list[dict[str, Any]] = []
        self.skipped_steps = self.skipped_in_a_row = 0  # updates skipped for a non-finite loss
        local_rows = self.rows.stop - self.rows.start
        self.states: tuple[list[State], list[State]] = (self._zero_states(local_rows), self._zero_states(local_rows))
        self._streams: tuple[int, Streams] | None = None
        self.command = " ".join(["elmo-tasks", "pretrain", *sys.argv[2:]]) if sys.argv[1:2] == ["pretrain"] else None
        if resume:
            self._restore(load_checkpoint(self.out))
        elif self.parallel.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "log.jsonl").write_text("")
        if self.parallel.is_main:
            d.vocab.save(self.out / "vocab.txt")
            (self.out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")

    # -- pieces -------------------------------------------------------------------------------------

    def _zero_states(self, batch: int) -> list[State]:
        o = self.model.options
        return [(torch.zeros(batch, o.projection_dim, device=self.device), torch.zeros(batch, o.lstm_dim, device=self.device))
                for _ in range(o.n_layers)]

    def _autocast(self):
        """bfloat16 autocast for the matrix products (``training.amp``) where the device has bfloat16
        units; parameters (the optimiser's master weights) and the softmax stay float32."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.amp else nullcontext()

    def _train_streams(self, epoch: int) -> Streams:
        if self._streams is None or self._streams[0] != epoch:
            t = self.config.training
            order = epoch_order(self.data.train.n_sentences, t.seed, epoch)
            self._streams = (epoch, build_streams(self.data.train, order, self.data.target_map, t.batch_size,
                                                  t.unroll_steps, self.per_sentence))
        return self._streams[1]

    def batch_at(self, step: int) -> Batch:
        """This process's rows of the training batch of global step ``step`` (0-based): a fixed function
        of the seed and the step."""
        epoch, k = divmod(step, self.batches_per_epoch)
        return self._train_streams(epoch).batch(k, self.per_sentence).take_rows(self.rows)

    def _run_lstms(self, batch: Batch, states: tuple[list[State], list[State]], dropout: float):
        return run_windows(self.model, self.data.char_table, batch, states, dropout, self.device)

    def _targets(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array.reshape(-1).astype(np.int64)).to(self.device)

    def _say(self, message: str, bar=None) -> None:
        if self.parallel.is_main:
            (bar.write if bar is not None else (lambda m: print(m, file=sys.stderr)))(message)

    # -- training -----------------------------------------------------------------------------------

    def train_step(self, batch: Batch) -> tuple[float, float]:
        """One update on ``batch`` (this process's rows); returns the batch's forward and backward loss."""
        t = self.config.training
        self.model.train()
        with self._autocast():
            top_f, top_b, finals = self._run_lstms(batch, self.states, t.dropout)
            if t.dropout:
                top_f = modules.dropout(top_f, t.dropout)
                top_b = modules.dropout(top_b, t.dropout)
        p = top_f.shape[-1]
        sums, counts = [], []
        for top, targets in ((top_f, batch.fwd_targets), (top_b, batch.bwd_targets)):
            target = self._targets(targets)
            hidden = top.reshape(-1, p)
            if self.sampled:
                nll = self.softmax.sampled_nll(hidden, target, self.sampler, self.sample_generator)
            else:
                nll = self.softmax.full_nll(hidden, target, chunk=hidden.shape[0])
            sums.append(nll.sum())
            counts.append((target != IGNORE).sum())
        counts_all = self.parallel.sum_(torch.stack(counts).float()).clamp(min=1)  # the whole batch's targets
        losses = [sums[0] / counts_all[0], sums[1] / counts_all[1]]
        loss = 0.5 * (losses[0] + losses[1])
        totals = self.parallel.sum_(torch.stack([losses[0].detach(), losses[1].detach()]))
        self.optimizer.zero_grad(set_to_none=True)
        if torch.isfinite(totals).all():
            (loss * t.unroll_steps).backward()
            self.parallel.sum_gradients(self.params)
            if t.clip_norm:
                nn.utils.clip_grad_norm_(self.params, t.clip_norm)
            self.optimizer.step()
            self.skipped_in_a_row = 0
        else:  # skip the update; give up only when it keeps happening
            self.skipped_steps += 1
            self.skipped_in_a_row += 1
            finals = tuple([(torch.zeros_like(h), torch.zeros_like(c)) for h, c in d] for d in finals)
            if self.skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW:
                raise UserError(f"training diverged at step {self.step}: {MAX_SKIPPED_IN_A_ROW} non-finite losses "
                                "in a row; lower training.learning_rate or set training.clip_norm")
        self.states = finals
        self.step += 1
        self.tokens_seen += int(counts_all[0])
        return float(totals[0]), float(totals[1])

    @torch.no_grad()
    def evaluate(self, max_tokens: int | None = None) -> dict[str, float] | None:
        """Held-out perplexity (full softmax, float32): forward, backward and exp of their mean loss."""
        if self.data.heldout is None:
            return None
        with preserved_rng(self.device, self.sample_generator):
            return self._evaluate(max_tokens)

    def _evaluate(self, max_tokens: int | None) -> dict[str, float]:
        t = self.config.training
        was_training = self.model.training
        self.model.eval()
        streams = heldout_streams(self.data.heldout, self.data.target_map, t.eval_batch_size, t.unroll_steps,
                                  self.per_sentence, max_tokens)
        rows = streams.fwd_inputs.shape[0]
        initial = (self._zero_states(rows), self._zero_states(rows))

        def run(batch: Batch, states: tuple) -> tuple:  # float32, as ``elmo-tasks perplexity`` scores
            return self._run_lstms(batch, states, 0.0)

        result = bilm_perplexity(run, self.softmax, streams, initial, self.per_sentence, self.device).as_dict()
        self.model.train(was_training)
        return result

    def _log(self, record: dict[str, Any]) -> None:
        if self.parallel.is_main:
            with open(self.out / "log.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")

    def train(self) -> dict[str, Any]:
        """Run (or continue) training to ``total_steps`` or ``max_minutes``, then export; returns the summary."""
        t = self.config.training
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.total_steps, initial=self.step, unit="step", desc="pretrain", file=sys.stderr,
                       mininterval=1.0 if sys.stderr.isatty() else 30.0, dynamic_ncols=True)
        last_checkpoint_time = time.monotonic()
        last_checkpoint_step = self.step
        window: list[float] = []
        window_tokens, window_start = 0, time.monotonic()
        run_start = time.monotonic()
        elapsed_at_start = self.elapsed
        deadline = None if t.max_minutes is None else 60.0 * t.max_minutes
        while self.step < self.total_steps:
            if deadline is not None and self.parallel.any(self.elapsed >= deadline)[0]:
                self._say(f"stopping at step {self.step}: training.max_minutes = {t.max_minutes} reached", bar)
                self._log({"step": self.step, "stopped": "max_minutes", "elapsed_s": round(self.elapsed, 1)})
                self.save()
                break
            batch = self.batch_at(self.step)
            loss_f, loss_b = self.train_step(batch)
            if math.isfinite(loss_f) and math.isfinite(loss_b):
                window.append(0.5 * (loss_f + loss_b))
            window_tokens += batch.fwd_targets.size * self.parallel.world
            self.elapsed = elapsed_at_start + (time.monotonic() - run_start)
            if bar is not None:
                bar.update(1)
            if self.step % t.log_every_steps == 0 or self.step == self.total_steps:
                seconds = max(time.monotonic() - window_start, 1e-9)
                loss = float(np.mean(window)) if window else float("nan")
                record = {"step": self.step, "epoch": self.step / self.batches_per_epoch, "loss": loss,
                          "ppl": math.exp(min(loss, 50.0)), "tokens_per_s": window_tokens / seconds,
                          "tokens_seen": self.tokens_seen, "skipped_steps": self.skipped_steps,
                          "elapsed_s": round(self.elapsed, 1)}
                self._log(record)
                if bar is not None:
                    bar.set_postfix(tok_s=f"{record['tokens_per_s']:.0f}", loss=f"{loss:.3f}", ppl=f"{record['ppl']:.1f}")
                window, window_tokens, window_start = [], 0, time.monotonic()
            if self.step % t.eval_every_steps == 0 and self.step < self.total_steps:
                self._evaluate_and_log(t.eval_max_tokens, bar)
            due = (self.step - last_checkpoint_step >= t.checkpoint_every_steps
                   or self.parallel.any(time.monotonic() - last_checkpoint_time >= 60 * t.checkpoint_every_minutes)[0])
            if due or self.step == self.total_steps:
                self.save()
                last_checkpoint_time, last_checkpoint_step = time.monotonic(), self.step
        if bar is not None:
            bar.close()
        final = self._evaluate_and_log(None, None, final=True)
        self.save()
        summary = run_summary(self, final)
        if self.parallel.is_main:
            self.export(self.out / "model")
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        self.parallel.finish()
        return summary

    def _evaluate_and_log(self, max_tokens: int | None, bar, final: bool = False) -> dict[str, float] | None:
        """Rank 0 evaluates (the model is the same everywhere); the others go on to the next step."""
        if not self.parallel.is_main:
            return None
        start = time.monotonic()
        result = self.evaluate(max_tokens)
        if result is None:
            return None
        record = {"step": self.step, "eval": "final" if final else "interval", **result,
                  "eval_s": round(time.monotonic() - start, 1), "elapsed_s": round(self.elapsed, 1)}
        self.history.append(record)
        self._log(record)
        self._say(f"step {self.step}: held-out perplexity forward {result['heldout_ppl_forward']:.1f}, backward "
                  f"{result['heldout_ppl_backward']:.1f}, average {result['heldout_ppl']:.1f} "
                  f"({result['heldout_tokens']} tokens)", bar)
        return result

    # -- checkpoints --------------------------------------------------------------------------------

    def _fingerprint(self) -> dict[str, Any]:
        """What a resumed run must share with the saved one."""
        cfg = self.config.to_dict()
        training = {k: v for k, v in cfg["training"].items()
                    if k not in ("max_steps", "epochs", "max_minutes", "device", "threads", "amp", "eval_every_steps",
                                 "eval_max_tokens",
                                 "eval_batch_size", "checkpoint_every_steps", "checkpoint_every_minutes",
                                 "log_every_steps", "export_dtype")}
        return {"model": cfg["model"], "training": training, "vocab": self.data.vocab.words,
                "train_tokens": self.data.train.n_tokens}

    def save(self) -> None:
        """Write the checkpoint (rank 0), with every process's rows of the LSTM states and random streams."""
        states = [[(self.parallel.gather_rows(h).cpu(), self.parallel.gather_rows(c).cpu()) for h, c in direction]
                  for direction in self.states]
        cuda_rng = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        rngs = self.parallel.gather_objects((torch.get_rng_state(), cuda_rng))
        if not self.parallel.is_main:
            return
        state = {
            "step": self.step, "tokens_seen": self.tokens_seen, "elapsed": self.elapsed, "history": self.history,
            "skipped_steps": self.skipped_steps, "init_from": self.init_from,
            "model": self.model.state_dict(), "softmax": self.softmax.state_dict(),
            "optimizer": self.optimizer.state_dict(), "states": states,
            "torch_rng": [cpu for cpu, _ in rngs], "cuda_rng": [cuda for _, cuda in rngs],
            "sample_rng": self.sample_generator.get_state(), "fingerprint": self._fingerprint(),
        }
        save_checkpoint(state, self.out)

    def _restore(self, state: dict[str, Any]) -> None:
        if state.get("fingerprint") != self._fingerprint():
            raise UserError(f"{self.out / CHECKPOINT_NAME}: the checkpoint was made with a different model, vocabulary, "
                            "corpus or training setting; resume with the same config (only the run length, "
                            "device and intervals may change)")
        self.model.load_state_dict(state["model"])
        self.softmax.load_state_dict(state["softmax"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.states = tuple([(h[self.rows].to(self.device), c[self.rows].to(self.device)) for h, c in direction]
                            for direction in state["states"])
        # each process's own random streams when the process count is the same; else rank 0's, offset
        cpu_states, cuda_states = state["torch_rng"], state.get("cuda_rng")
        if isinstance(cpu_states, torch.Tensor):  # a checkpoint from before data-parallel training
            cpu_states, cuda_states = [cpu_states], [cuda_states[0] if cuda_states else None]
        same_world = len(cpu_states) == self.parallel.world
        torch.set_rng_state(cpu_states[self.parallel.rank if same_world else 0])
        cuda = cuda_states[self.parallel.rank if same_world else 0]
        if cuda is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(cuda, self.device)
        if not same_world and self.parallel.rank > 0:
            torch.manual_seed(int(torch.randint(2**62, (1,))) + self.parallel.rank)
        self.sample_generator.set_state(state["sample_rng"])
        self.step, self.tokens_seen = state["step"], state["tokens_seen"]
        self.elapsed, self.history = state["elapsed"], state["history"]
        self.skipped_steps = state.get("skipped_steps", 0)
        self.init_from = state.get("init_from")  # what the run started from (a resumed run keeps it)

    # -- export -------------------------------------------------------------------------------------

    def export(self, directory: Path) -> Path:
        """``options.json`` + ``weights.hdf5`` (the public format) + ``vocab.txt`` + ``softmax.hdf5``."""
        t = self.config.training
        model = self.model
        model.options.extra = {
            "bidirectional": True, "dropout": t.dropout, "all_clip_norm_val": t.clip_norm or 0,
            "batch_size": t.batch_size, "unroll_steps": t.unroll_steps, "n_tokens_vocab": len(self.data.vocab),
            "n_train_tokens": self.data.train.n_tokens, "n_negative_samples_batch": t.n_negative_samples,
            "sample_softmax": self.sampled, "learning_rate": t.learning_rate, "state_mode": t.state_mode,
        }
        save_bilm(model.cpu(), directory, dtype=t.export_dtype)
        model.to(self.device)
        self.data.vocab.save(directory / "vocab.txt")
        save_softmax(self.softmax, directory / SOFTMAX_NAME, dtype=t.export_dtype)
        return directory
