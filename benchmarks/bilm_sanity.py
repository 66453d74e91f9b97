"""Is the pretrained biLM a language model at all? Held-out perplexity against a unigram model, and
nearest neighbours by layer 0 (context-free, over the vocabulary) and by layer 2 (in context, over
word occurrences in held-out sentences).

    python benchmarks/bilm_sanity.py [--model DIR] [--heldout FILE] [--train FILE] [--json OUT]

The model folder must hold what ``elmo-tasks pretrain`` exports: options.json, weights.hdf5 and, for
the perplexity, vocab.txt + softmax.hdf5. The text defaults to the corpus that
``elmo-tasks data corpus`` builds (held-out split; the training split for the unigram counts).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from elmo_tasks.bilm.char_ids import batch_to_ids
from elmo_tasks.bilm.weights import load_bilm_dir
from elmo_tasks.embedder import Embedder
from elmo_tasks.errors import UserError, run_script
from elmo_tasks.model_folder import resolve_model
from elmo_tasks.pretrain.evaluate import bilm_perplexity, heldout_streams, unigram_perplexity, zero_states
from elmo_tasks.pretrain.softmax import SOFTMAX_NAME, load_softmax
from elmo_tasks.pretrain.text_source import TypeTable, encode_files
from elmo_tasks.pretrain.vocab import Vocabulary
from elmo_tasks.pretrain.windows import run_windows

LAYER0_WORDS = ["king", "water", "quickly", "beautiful", "London", "running", "seventeen", "unhappiness"]
CONTEXT_WORDS = ["bank", "light", "spring", "bear", "fair", "watch", "lead", "mean"]


def corpus_file(name: str) -> Path:
    from elmo_tasks.data.sources import cache_dir

    return cache_dir() / "corpus" / name


def perplexities(model_dir: Path, heldout: Path, train: Path, max_tokens: int | None, rows: int) -> dict:
    options = json.loads((model_dir / "options.json").read_text())
    vocab = Vocabulary.load(model_dir / "vocab.txt")
    softmax = load_softmax(model_dir / SOFTMAX_NAME)
    bilm = load_bilm_dir(model_dir)
    device = torch.device("cpu")
    per_sentence = options.get("state_mode", "stateful") == "per_sentence"
    unroll = int(options.get("unroll_steps", 20))
    types = TypeTable()
    held = encode_files([str(heldout)], types)
    train_text = encode_files([str(train)], types)
    target_map = vocab.target_map(types)
    char_table = types.char_table()
    streams = heldout_streams(held, target_map, rows, unroll, per_sentence, max_tokens)
    n = streams.fwd_inputs.shape[0]

    def run(batch, states):
        return run_windows(bilm, char_table, batch, states, 0.0, device)

    start = time.perf_counter()
    model_ppl = bilm_perplexity(run, softmax, streams, (zero_states(bilm, n, device), zero_states(bilm, n, device)),
                                per_sentence, device)
    seconds = time.perf_counter() - start
    unigram = unigram_perplexity(train_text, target_map, len(vocab), vocab.bos, vocab.eos, streams)
    oov = float(np.mean(target_map[held.tokens] == vocab.unk))
    return {"heldout_file": str(heldout), "train_file_for_unigram": str(train), "vocab_size": len(vocab),
            "heldout_oov_rate": oov, "state_mode": "per_sentence" if per_sentence else "stateful",
            "rows": n, "unroll_steps": unroll, "biLM": model_ppl.as_dict(), "unigram": unigram.as_dict(),
            "seconds": round(seconds, 1)}


def cosine_neighbours(matrix: torch.Tensor, query: torch.Tensor, k: int, exclude: set[int]) -> list[tuple[int, float]]:
    """The ``k`` rows most similar to ``query`` by cosine after removing the mean row (the vectors
    share a large common component that would otherwise make every cosine close to 1)."""
    mean = matrix.mean(dim=0)
    matrix, query = matrix - mean, query - mean
    normed = matrix / matrix.norm(dim=1, keepdim=True).clamp(min=1e-12)
    sims = normed @ (query / query.norm().clamp(min=1e-12))
    order = torch.argsort(sims, descending=True).tolist()
    return [(i, float(sims[i])) for i in order if i not in exclude][:k]


def layer0_neighbours(embedder: Embedder, vocab_words: list[str], queries: list[str], k: int) -> dict:
    words = [w for w in vocab_words if w not in ("<S>", "</S>", "<UNK>")]
    vectors = []
    with torch.inference_mode():
        for start in range(0, len(words), 4096):
            chunk = batch_to_ids([[w] for w in words[start : start + 4096]])[:, 0]
            vectors.append(embedder.engine.encode_tokens(chunk))
    matrix = torch.cat(vectors)
    index = {w: i for i, w in enumerate(words)}
    out = {}
    for q in queries:
        with torch.inference_mode():
            qv = matrix[index[q]] if q in index else embedder.engine.encode_tokens(batch_to_ids([[q]])[:, 0])[0]
        out[q] = [(words[i], round(s, 3)) for i, s in cosine_neighbours(matrix, qv, k, {index.get(q, -1)})]
    return out


def context_neighbours(embedder: Embedder, sentences: list[list[str]], queries: list[str], k: int,
                       per_word: int) -> list[dict]:
    """For up to ``per_word`` occurrences of each query word: the nearest other occurrences (of any
    word, from other sentences) by the top layer."""
    arrays = list(embedder.embed_sentences(sentences))
    where = [(s, t) for s, tokens in enumerate(sentences) for t in range(len(tokens))]
    matrix = torch.from_numpy(np.concatenate([a[2] for a in arrays if a.shape[1]]))
    results = []
    for q in queries:
        hits = [i for i, (s, t) in enumerate(where) if sentences[s][t] == q][:per_word]
        for i in hits:
            s, t = where[i]
            same_sentence = {j for j, (s2, _) in enumerate(where) if s2 == s}
            neighbours = []
            for j, sim in cosine_neighbours(matrix, matrix[i], k, same_sentence):
                s2, t2 = where[j]
                neighbours.append({"word": sentences[s2][t2], "similarity": round(sim, 3),
                                   "context": _snippet(sentences[s2], t2)})
            results.append({"word": q, "context": _snippet(sentences[s], t), "neighbours": neighbours})
    return results


def _snippet(tokens: list[str], t: int, width: int = 5) -> str:
    left = tokens[max(0, t - width) : t]
    right = tokens[t + 1 : t + 1 + width]
    return " ".join(left + [f"[{tokens[t]}]"] + right)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="model folder (default: the shipped default model)")
    parser.add_argument("--heldout", type=Path, help="held-out text (default: the corpus's heldout.txt)")
    parser.add_argument("--train", type=Path, help="training text for the unigram counts (default: the corpus's train.txt)")
    parser.add_argument("--max-tokens", type=int, help="score at most this many held-out positions (default: all)")
    parser.add_argument("--rows", type=int, default=64, help="stream rows for scoring (default 64)")
    parser.add_argument("--context-sentences", type=int, default=3000, help="held-out sentences searched for "
                        "layer-2 neighbours (default 3000)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = resolve_model(args.model)
    model_dir = model.path
    heldout = args.heldout or corpus_file("heldout.txt")
    train = args.train or corpus_file("train.txt")
    for path, what in ((heldout, "--heldout"), (train, "--train")):
        if not path.is_file():
            raise UserError(f"{what}: {path} not found (build the corpus with `elmo-tasks data corpus`)")
    for file in (model.vocab_file, model.softmax_file):
        if not file.is_file():
            raise UserError(f"{model_dir} has no {file.name}: perplexity needs a model exported by `elmo-tasks pretrain`")
    results = {"model": str(model_dir)}
    print(f"model {model_dir}\n", flush=True)
    ppl = perplexities(model_dir, heldout, train, args.max_tokens, args.rows)
    results["perplexity"] = ppl
    b, u = ppl["biLM"], ppl["unigram"]
    print(f"held-out perplexity on {b['heldout_tokens']:,} target positions per direction of {heldout} "
          f"(vocabulary {ppl['vocab_size']:,}, held-out OOV rate {ppl['heldout_oov_rate']:.2%}, {ppl['state_mode']}):")
    print("| model | forward | backward | average |\n| --- | ---: | ---: | ---: |")
    print(f"| biLM (full softmax) | {b['heldout_ppl_forward']:.1f} | {b['heldout_ppl_backward']:.1f} | {b['heldout_ppl']:.1f} |")
    print(f"| unigram (train counts, add-one) | {u['heldout_ppl_forward']:.1f} | {u['heldout_ppl_backward']:.1f} "
          f"| {u['heldout_ppl']:.1f} |\n", flush=True)

    embedder = Embedder.from_dir(model_dir)
    vocab_words = Vocabulary.load(model_dir / "vocab.txt").words
    results["layer0_neighbours"] = layer0_neighbours(embedder, vocab_words, LAYER0_WORDS, k=6)
    print("nearest vocabulary words by layer 0 (context-free token vectors, cosine after removing the mean):")
    print("| word | neighbours |\n| --- | --- |")
    for word, neighbours in results["layer0_neighbours"].items():
        print(f"| {word} | {', '.join(f'{w} ({s:.2f})' for w, s in neighbours)} |")

    lines = [line.split() for line in heldout.read_text(encoding="utf-8").splitlines() if line.split()]
    lines = lines[: args.context_sentences]
    results["layer2_neighbours"] = context_neighbours(embedder, lines, CONTEXT_WORDS, k=3, per_word=2)
    print(f"\nnearest occurrences by layer 2 (in context, cosine after removing the mean; {len(lines):,} held-out "
          "sentences, other sentences only):")
    for item in results["layer2_neighbours"]:
        print(f"- {item['context']}")
        for n in item["neighbours"]:
            print(f"    {n['similarity']:.2f}  {n['context']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    run_script(main, "bilm_sanity")
