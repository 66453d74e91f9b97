"""Bad inputs across every command: each is exit code 2 with exactly one line on stderr
(``elmo-tasks: error: ...``) naming the file, line or key, no traceback, nothing at the final
output name and no temporary files left. Each case runs the real command line in this process."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from tasks_util import TASK_FIXTURES

from elmo_tasks.cli import main
from elmo_tasks.embedder import FIXTURE_MODEL_DIR


class Workspace:
    """A folder of inputs for one case; every helper writes a file and returns its path."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def p(self, name: str) -> Path:
        return self.root / name

    def text(self, name: str = "in.txt", content: str | bytes = "a short sentence\nanother one here\n") -> Path:
        path = self.p(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return path

    def folder(self, name: str) -> Path:
        self.p(name).mkdir(parents=True, exist_ok=True)
        return self.p(name)

    def config(self, file: str = "c.yaml", base: str = "glosses_glove.yaml", **keys) -> Path:
        data = {"extends": str(TASK_FIXTURES / base), "dataset": {"max_examples": 20}, "trainer": {"epochs": 1}}
        for dotted, value in keys.items():
            node = data
            *parents, last = dotted.split("__")
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = value
        return self.text(file, yaml.safe_dump(data))

    def model(self, change: Callable[[dict], None] | None = None, name: str = "model") -> Path:
        folder = self.p(name)
        shutil.copytree(FIXTURE_MODEL_DIR, folder)
        if change is not None:
            options = json.loads((folder / "options.json").read_text())
            change(options)
            (folder / "options.json").write_text(json.dumps(options))
        return folder

    def run_folder(self, name: str = "run", **files: str | bytes) -> Path:
        folder = self.folder(name)
        for file, content in files.items():
            self.text(f"{name}/{file}", content)
        return folder

    def jsonl_config(self, train: str) -> Path:
        for split in ("dev", "test"):
            shutil.copy(TASK_FIXTURES / "glosses" / f"{split}.jsonl", self.p(f"{split}.jsonl"))
        self.text("train.jsonl", train)
        return self.text("j.yaml", yaml.safe_dump({
            "dataset": {"source": "files", "format": "jsonl",
                        "files": {s: f"{s}.jsonl" for s in ("train", "dev", "test")}},
            "features": {"glove": {"source": str(TASK_FIXTURES / "glove.fixture.50d.txt")}},
            "head": {"name": "classifier"}, "trainer": {"epochs": 1}}))


    def csv_config(self, options: dict, **dataset) -> Path:
        for split in ("train", "dev", "test"):
            self.text(f"{split}.csv", "text,label\n\"Loved it, really.\",pos\nA dull story.,neg\n")
        return self.text("t.yaml", yaml.safe_dump({
            "dataset": {"source": "files", "format": "csv", "files": {s: f"{s}.csv" for s in ("train", "dev", "test")},
                        "options": options, **dataset},
            "features": {"glove": {"source": str(TASK_FIXTURES / "glove.fixture.50d.txt")}},
            "head": {"name": "classifier"}, "trainer": {"epochs": 1}}))

    def runs_of_two_budgets(self) -> Path:
        """A GloVe run of 1 epoch and a GloVe + ELMo run of 2 (real runs of a few seconds) under one folder."""
        elmo = {"features__elmo": {"model": "fixture", "cache_dir": str(self.p("cache"))}}
        for arm, epochs, extra in (("glove", 1, {}), ("glove_elmo", 2, elmo)):
            config = self.config(f"{arm}.yaml", trainer__epochs=epochs, **extra)
            assert main(["run", str(config), "--out", str(self.p(f"runs/{arm}/seed0")), "--quiet"]) == 0
        return self.p("runs")

    def suite(self, text: str | None = None) -> Path:
        if text is None:
            text = yaml.safe_dump({"name": "s", "tasks": [{"name": "t", "glove": str(self.config("g.yaml")),
                                                           "glove_elmo": str(self.config("g.yaml"))}]})
        return self.text("suite.yaml", text)


class Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def crafted_checkpoint(ws: Workspace) -> bytes:
    path = ws.p("evil.pt")
    torch.save({"fingerprint": "x", "epoch": 1, "model": {}, "evil": Payload()}, path)
    return path.read_bytes()


def _evil_tar(ws: Workspace) -> Path:
    """A TF-Hub-like archive whose member climbs out of the extraction folder."""
    import io
    import tarfile

    path = ws.p("evil.tar")
    with tarfile.open(path, "w") as tar:
        for name in ("m/variables/variables.index", "../../escaped.txt"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    return path


def _opt(section: str, key: str, value):
    return lambda o: o[section].__setitem__(key, value)


def laughs() -> str:
    lines = ["l0: &l0 {a: lol, b: lol, c: lol, d: lol, e: lol, f: lol, g: lol, h: lol, i: lol, j: lol}"]
    lines += [f"l{k}: &l{k} {{" + ", ".join(f"{c}: *l{k - 1}" for c in "abcdefghij") + "}" for k in range(1, 10)]
    return "\n".join(lines) + "\n"


# (id, build(ws) -> (argv, words the one line must contain, final output that must not exist or None))
Case = tuple[str, Callable[[Workspace], tuple[list, list, Path | None]]]
CASES: list[Case] = [
    # -- embed-file: inputs, outputs, model files
    ("embed-file input missing", lambda ws: (["embed-file", ws.p("none.txt"), ws.p("o.h5")],
                                             ["input file not found", ws.p("none.txt")], ws.p("o.h5"))),
    ("embed-file input is a folder", lambda ws: (["embed-file", ws.folder("d"), ws.p("o.h5")],
                                                 ["input file is a folder, not a file", ws.p("d")], ws.p("o.h5"))),
    ("embed-file same file", lambda ws: (["embed-file", ws.text(), ws.p("in.txt")],
                                         ["is the input file", "in.txt"], None)),
    ("embed-file output symlink to input", lambda ws: (
        ["embed-file", ws.text(), (ws.p("link.h5").symlink_to(ws.p("in.txt")), ws.p("link.h5"))[1]],
        ["is the input file", "link.h5"], None)),
    ("embed-file output hard link of input", lambda ws: (
        ["embed-file", ws.text(), (os.link(ws.p("in.txt"), ws.p("hard.h5")), ws.p("hard.h5"))[1]],
        ["is the input file", "hard.h5"], None)),
    ("embed-file input through a symlink", lambda ws: (
        ["embed-file", (ws.text(), ws.p("l.txt").symlink_to(ws.p("in.txt")), ws.p("l.txt"))[2], ws.p("in.txt")],
        ["is the input file"], None)),
    ("embed-file output is a folder", lambda ws: (["embed-file", ws.text(), ws.folder("outdir")],
                                                  ["output file is a folder", "outdir"], None)),
    ("embed-file output folder missing", lambda ws: (["embed-file", ws.text(), ws.p("no/o.h5")],
                                                     ["folder does not exist", ws.p("no")], ws.p("no/o.h5"))),
    ("embed-file output under /proc", lambda ws: (["embed-file", ws.text(), "/proc/x.hdf5"],
                                                  ["cannot write in /proc", "/proc/x.hdf5"], Path("/proc/x.hdf5"))),
    ("embed-file output under a file", lambda ws: (["embed-file", ws.text(), ws.p("in.txt") / "o.h5"],
                                                   ["in.txt"], None)),
    ("embed-file batch size 0", lambda ws: (["embed-file", ws.text(), ws.p("o.h5"), "--batch-size", "0"],
                                            ["--batch-size"], ws.p("o.h5"))),
    ("embed-file bad UTF-8 line", lambda ws: (["embed-file", ws.text(content=b"ok\nfine\n\xff\xfe bad\n"), ws.p("o.h5"),
                                               "--model", ws.model(), "--quiet"], ["in.txt, line 3", "UTF-8"], ws.p("o.h5"))),
    ("embed-file model folder missing", lambda ws: (["embed-file", ws.text(), ws.p("o.h5"), "--model", ws.p("nomodel")],
                                                    ["model folder not found", "nomodel"], ws.p("o.h5"))),
    ("embed-file options without weights", lambda ws: (
        ["embed-file", ws.text(), ws.p("o.h5"), "--options", FIXTURE_MODEL_DIR / "options.json"],
        ["--options and --weights go together"], ws.p("o.h5"))),
    ("embed-file model and options", lambda ws: (
        ["embed-file", ws.text(), ws.p("o.h5"), "--model", FIXTURE_MODEL_DIR, "--options", "a", "--weights", "b"],
        ["either --model or --options"], ws.p("o.h5"))),
    ("embed-file options not JSON", lambda ws: (
        ["embed-file", ws.text(), ws.p("o.h5"), "--model", (ws.model(), ws.text("model/options.json", "{lstm"))[0]],
        ["options.json: not valid JSON"], ws.p("o.h5"))),
    ("embed-file options nested deep", lambda ws: (
        ["embed-file", ws.text(), ws.p("o.h5"), "--model",
         (ws.model(), ws.text("model/options.json", "[" * 200_000 + "]" * 200_000))[0]],
        ["options.json", "nested too deeply"], ws.p("o.h5"))),
    ("embed-file options a list", lambda ws: (
        ["embed-file", ws.text(), ws.p("o.h5"), "--model", (ws.model(), ws.text("model/options.json", "[]"))[0]],
        ["options.json: expected a JSON object"], ws.p("o.h5"))),
    ("embed-file options missing lstm.dim", lambda ws: (
        ["embed-file", ws.text(), ws.p("o.h5"), "--model", ws.model(lambda o: o["lstm"].pop("dim"))],
        ["options.json: missing key 'lstm.dim'"], ws.p("o.h5"))),
    ("embed-file filter wider than a token", lambda ws: (
        ["embed-file", ws.text(), ws.p("o.h5"), "--model", ws.model(_opt("char_cnn", "filters", [[1, 4], [51, 8]]))],
        ["options.json: char_cnn.filters[1] is 51 characters wide"], ws.p("o.h5"))),
    ("embed-file lstm.dim 1e7", lambda ws: (
        ["embed-file", ws.text(), ws.p("o.h5"), "--model", ws.model(_opt("lstm", "dim", 10_000_000))],
        ["options.json: lstm.dim is 10,000,000"], ws.p("o.h5"))),
    ("embed-file 1e5 highways", lambda ws: (
        ["embed-file", ws.text(), ws.p("o.h5"), "--model", ws.model(_opt("char_cnn", "n_highway", 100_000))],
        ["options.json: char_cnn.n_highway is 100,000"], ws.p("o.h5"))),
    ("embed-file weights random bytes", lambda ws: (
        ["embed-file", ws.text(), ws.p("o.h5"), "--model", (ws.model(), ws.text("model/weights.hdf5", os.urandom(4096)))[0]],
        ["weights.hdf5: not a readable HDF5 file"], ws.p("o.h5"))),
    ("embed-file weights missing", lambda ws: (
        ["embed-file", ws.text(), ws.p("o.h5"), "--model", (ws.model(), ws.p("model/weights.hdf5").unlink())[0]],
        ["weights.hdf5 not found"], ws.p("o.h5"))),
    ("embed-file weights of other sizes", lambda ws: (
        ["embed-file", ws.text(), ws.p("o.h5"), "--model", ws.model(_opt("lstm", "projection_dim", 32))],
        ["weights.hdf5: dataset", "options file implies"], ws.p("o.h5"))),
    ("embed-file output is the model's weights", lambda ws: (
        ["embed-file", ws.text(), ws.p("model/weights.hdf5"), "--model", ws.model()],
        ["is the input file", "weights.hdf5"], None)),
    ("embed-file output is the options file", lambda ws: (
        ["embed-file", ws.text(), ws.p("model/options.json"), "--options", ws.model() / "options.json",
         "--weights", ws.p("model/weights.hdf5")], ["is the input file", "options.json"], None)),
    # -- embed-file: --use-sentence-keys, checked before the model loads
    ("embed-file sentence key with /", lambda ws: (
        ["embed-file", ws.text(content="a b\nand/or c\n"), ws.p("o.h5"), "--use-sentence-keys", "--model", ws.p("nomodel")],
        ["in.txt, line 2", "contains '/'", "nothing was embedded"], ws.p("o.h5"))),
    ("embed-file sentence key empty", lambda ws: (
        ["embed-file", ws.text(content="a b\n\nc d\n"), ws.p("o.h5"), "--use-sentence-keys"],
        ["in.txt, line 2", "the line is empty"], ws.p("o.h5"))),
    ("embed-file sentence key twice", lambda ws: (
        ["embed-file", ws.text(content="a b\nc d\na b\n"), ws.p("o.h5"), "--use-sentence-keys"],
        ["in.txt, line 3", "occurs twice (lines 1 and 3)"], ws.p("o.h5"))),
    ("embed-file sentence key '..'", lambda ws: (
        ["embed-file", ws.text(content="a b\n..\n"), ws.p("o.h5"), "--use-sentence-keys"],
        ["in.txt, line 2", "names a group"], ws.p("o.h5"))),
    ("embed-file sentence key sentence_to_index", lambda ws: (
        ["embed-file", ws.text(content="sentence_to_index\n"), ws.p("o.h5"), "--use-sentence-keys"],
        ["in.txt, line 1", "index dataset"], ws.p("o.h5"))),
    # -- the shared runtime options (--device, --threads) of every command that runs a model
    ("embed-file device cuda without a GPU", lambda ws: (["embed-file", ws.text(), ws.p("o.h5"), "--device", "cuda"],
                                                         ["--device cuda", "no CUDA device"], ws.p("o.h5"))),
    ("embed-file threads 0", lambda ws: (["embed-file", ws.text(), ws.p("o.h5"), "--threads", "0"], ["--threads"], ws.p("o.h5"))),
    ("embed unknown device", lambda ws: (["embed", "a b", "--device", "tpu"], ["--device", "'tpu'", "cuda:N"], None)),
    ("embed device cuda:1 without a GPU", lambda ws: (["embed", "a b", "--device", "cuda:1"], ["--device cuda:1"], None)),
    ("run device cuda flag without a GPU", lambda ws: (["run", ws.config(), "--device", "cuda", "--out", ws.p("r")],
                                                        ["--device cuda", "no CUDA device"], ws.p("r/metrics.json"))),
    ("cache unknown device", lambda ws: (["cache", ws.config(base="wnut16_elmo.yaml"), "--device", "gpu"], ["--device", "'gpu'"], None)),
    ("pretrain device cuda without a GPU", lambda ws: (["pretrain", Path(__file__).parents[1] / "configs/pretrain/tiny.yaml",
                                                        "--out", ws.p("o"), "--device", "cuda"], ["--device cuda"], ws.p("o"))),
    ("perplexity device cuda without a GPU", lambda ws: (["perplexity", ws.text(), "--device", "cuda"], ["--device cuda"], None)),
    ("bench unknown device", lambda ws: (["bench", ws.suite(), "--device", "tpu", "--out", ws.p("b")], ["--device", "'tpu'"], ws.p("b"))),
    # -- embed
    ("embed model missing", lambda ws: (["embed", "a b", "--model", ws.p("nomodel")], ["nomodel"], None)),
    ("embed word absent", lambda ws: (["embed", "a b", "--word", "zebra", "--model", ws.model()],
                                      ["--word 'zebra'"], None)),
    # -- run: the config file
    ("run config missing", lambda ws: (["run", ws.p("none.yaml")], ["config file not found", "none.yaml"], None)),
    ("run config is a folder", lambda ws: (["run", ws.folder("cfg")], ["config file is a folder, not a file", "cfg"], None)),
    ("run config bad YAML", lambda ws: (["run", ws.text("c.yaml", "a: 1\nb: [1, 2\nc: 3\n")], ["c.yaml, line", "not valid YAML"], None)),
    ("run config a list", lambda ws: (["run", ws.text("c.yaml", "- 1\n- 2\n")], ["c.yaml", "must be a mapping"], None)),
    ("run config not UTF-8", lambda ws: (["run", ws.text("c.yaml", b"a: \xff\n")], ["c.yaml", "not UTF-8"], None)),
    ("run unknown key", lambda ws: (["run", ws.config(trainer__epoch=3)], ["c.yaml", "trainer.epoch: unknown key"], None)),
    ("run extends missing", lambda ws: (["run", ws.text("c.yaml", "extends: nothere.yaml\n")],
                                        ["c.yaml: extends: file not found", "nothere.yaml"], None)),
    ("run recursive alias", lambda ws: (["run", ws.text("c.yaml", "x: 1\na: &a [1, *a]\n")], ["c.yaml, line 2", "alias"], None)),
    ("run billion laughs", lambda ws: (["run", ws.text("c.yaml", laughs())], ["c.yaml, line", "aliases expand"], None)),
    ("run config nested deep", lambda ws: (["run", ws.text("c.yaml", "a: " + "[" * 100_000 + "]" * 100_000)],
                                           ["c.yaml", "nested too deeply"], None)),
    ("run device cuda without a GPU", lambda ws: (["run", ws.config(trainer__device="cuda")],
                                                  ["c.yaml", "trainer.device", "no CUDA GPU"], None)),
    ("run unknown device", lambda ws: (["run", ws.config(trainer__device="tpu9")], ["c.yaml", "trainer.device", "unknown device"], None)),
    ("run negative lr", lambda ws: (["run", ws.config(trainer__lr=-0.1)], ["c.yaml", "trainer.lr: must be a finite number"], None)),
    ("run infinite lr", lambda ws: (["run", ws.config(trainer__lr=float("inf"))], ["c.yaml", "trainer.lr"], None)),
    ("run chars dim 0", lambda ws: (["run", ws.config(features__chars={"dim": 0})], ["c.yaml", "features.chars.dim"], None)),
    ("run chars wider than tokens", lambda ws: (["run", ws.config(features__chars={"width": 30, "max_chars": 20})],
                                                ["c.yaml", "features.chars.width"], None)),
    ("run glove source a folder", lambda ws: (["run", ws.config(features__glove__source=str(ws.folder("g")))],
                                              ["c.yaml", "features.glove.source: file is a folder"], None)),
    ("run amp not a boolean", lambda ws: (["run", ws.config(trainer__amp="yes")], ["c.yaml", "trainer.amp"], None)),
    ("run negative threads", lambda ws: (["run", ws.config(trainer__threads=-2)], ["c.yaml", "trainer.threads"], None)),
    ("run seed 2**70", lambda ws: (["run", ws.config(), "--seed", str(2**70)], ["trainer.seed", str(2**70)], None)),
    ("run elmo batch size 0", lambda ws: (["run", ws.config(base="wnut16_elmo.yaml", features__elmo__batch_size=0)],
                                          ["c.yaml", "features.elmo.batch_size"], None)),
    ("run trainer batch size 0", lambda ws: (["run", ws.config(trainer__batch_size=0)], ["c.yaml", "trainer.batch_size"], None)),
    ("run unknown head", lambda ws: (["run", ws.config(head={"name": "tagr"})], ["c.yaml", "head.name: unknown head"], None)),
    ("run glove file missing", lambda ws: (["run", ws.config(features__glove__source="nope.txt")],
                                           ["c.yaml", "features.glove.source"], None)),
    ("run threads 0", lambda ws: (["run", ws.config(), "--threads", "0"], ["--threads"], None)),
    ("run name leaves runs/", lambda ws: (["run", ws.config(name="../../../../elsewhere")], ["c.yaml", "name:", "outside runs/"],
                                          (ws.root / "runs" / "../../../../elsewhere").resolve())),
    ("run --out is a file", lambda ws: (["run", ws.config(), "--out", ws.text("f.txt")], ["--out", "f.txt", "not a folder"], None)),
    ("run --out under /proc", lambda ws: (["run", ws.config(), "--out", "/proc/x/run"], ["--out", "/proc/x/run", "cannot write"],
                                          Path("/proc/x/run"))),
    ("run --out under a file", lambda ws: (["run", ws.config(), "--out", ws.text("f.txt") / "sub"], ["--out", "f.txt"], None)),
    ("run dataset file is a folder", lambda ws: (["run", ws.config(dataset={"files": {"train": str(ws.folder("tr"))}})],
                                                 ["c.yaml", "dataset.files.train: file is a folder"], None)),
    ("run dataset file missing", lambda ws: (["run", ws.config(dataset={"files": {"dev": "nope.jsonl"}})],
                                             ["c.yaml", "dataset.files.dev: file not found"], None)),
    # -- run --set KEY=VALUE: checked like the file, the error says it came from --set
    ("run --set unknown key", lambda ws: (["run", ws.config(), "--set", "trainer.epoch=3"],
                                          ["--set", "trainer.epoch: unknown key"], None)),
    ("run --set not KEY=VALUE", lambda ws: (["run", ws.config(), "--set", "trainer"], ["--set 'trainer'", "KEY=VALUE"], None)),
    ("run --set bad YAML", lambda ws: (["run", ws.config(), "--set", "trainer.epochs=[1"], ["--set trainer.epochs", "not valid YAML"], None)),
    ("run --set wrong type", lambda ws: (["run", ws.config(), "--set", "trainer.epochs=abc"],
                                         ["--set", "trainer.epochs: must be an integer"], None)),
    ("run --set and --seed", lambda ws: (["run", ws.config(), "--set", "trainer.seed=1", "--seed", "2"],
                                         ["--seed and --set trainer.seed"], None)),
    ("run --set unknown tokenizer", lambda ws: (["run", ws.config(), "--set", "dataset.tokenize=bpe"],
                                                ["--set", "dataset.tokenize: must be one of"], None)),
    # -- run: your own data (csv / tsv options, dataset.tokenize, JSONL tokens)
    ("run csv without label_column", lambda ws: (["run", ws.csv_config({"text_column": "text"}), "--out", ws.p("r")],
                                                 ["t.yaml", "dataset.options.label_column: missing"], ws.p("r/metrics.json"))),
    ("run csv unknown option", lambda ws: (["run", ws.csv_config({"text_column": "text", "label_column": "label", "sep": ";"}),
                                            "--out", ws.p("r")], ["t.yaml", "dataset.options.sep"], ws.p("r/metrics.json"))),
    ("run ptb on CoNLL tokens", lambda ws: (["run", ws.config(base="wnut16_glove.yaml", dataset__tokenize="ptb")],
                                            ["c.yaml", "dataset.tokenize", "tokenised already"], None)),
    ("run tokenize unknown", lambda ws: (["run", ws.csv_config({"text_column": "text", "label_column": "label"}, tokenize="bpe")],
                                         ["t.yaml", "dataset.tokenize: must be one of"], None)),
    ("run JSONL tokens a string", lambda ws: (
        ["run", ws.jsonl_config('{"tokens": ["a"], "label": "x"}\n{"tokens": "@my day", "label": "y"}\n'), "--out", ws.p("r"),
         "--quiet"], ["train.jsonl, line 2", '"tokens" must be a list of strings, got a string'], ws.p("r/metrics.json"))),
    ("run JSONL tokens numbers", lambda ws: (
        ["run", ws.jsonl_config('{"tokens": [1, 2], "label": "x"}\n'), "--out", ws.p("r"), "--quiet"],
        ["train.jsonl, line 1", '"tokens" must be a list of strings'], ws.p("r/metrics.json"))),
    # -- run: data files and the run folder
    ("run JSONL nested 200,000 deep", lambda ws: (
        ["run", ws.jsonl_config("[" * 200_000 + "]" * 200_000 + "\n"), "--out", ws.p("r"), "--quiet"],
        ["train.jsonl, line 1", "nested too deeply"], ws.p("r/metrics.json"))),
    ("run JSONL line not an object", lambda ws: (
        ["run", ws.jsonl_config('{"tokens": ["a"], "label": "x"}\n[1, 2]\n'), "--out", ws.p("r"), "--quiet"],
        ["train.jsonl, line 2", "expected a JSON object"], ws.p("r/metrics.json"))),
    ("run metrics.json corrupt", lambda ws: (["run", ws.config(), "--out", ws.run_folder(**{"metrics.json": "{not json"})],
                                             ["metrics.json: not valid JSON"], None)),
    ("run metrics.json a list", lambda ws: (["run", ws.config(), "--out", ws.run_folder(**{"metrics.json": "[]"})],
                                            ["metrics.json", "expected a JSON object"], None)),
    ("run last.pt random bytes", lambda ws: (["run", ws.config(), "--out", ws.run_folder(**{"checkpoints/last.pt": os.urandom(999)})],
                                             ["last.pt: not a readable checkpoint"], ws.p("run/metrics.json"))),
    ("run last.pt empty", lambda ws: (["run", ws.config(), "--out", ws.run_folder(**{"checkpoints/last.pt": b""})],
                                      ["last.pt: not a readable checkpoint"], ws.p("run/metrics.json"))),
    ("run last.pt crafted pickle", lambda ws: (["run", ws.config(), "--out", ws.run_folder(**{"checkpoints/last.pt": crafted_checkpoint(ws)})],
                                               ["last.pt: not a readable checkpoint"], ws.p("run/metrics.json"))),
    ("run last.pt a list", lambda ws: (["run", ws.config(), "--out",
                                        (ws.run_folder(), ws.folder("run/checkpoints"), torch.save([1], ws.p("run/checkpoints/last.pt")),
                                         ws.p("run"))[3]], ["last.pt: not a checkpoint"], ws.p("run/metrics.json"))),
    # -- compare
    ("compare folder missing", lambda ws: (["compare", ws.p("nothing")], ["nothing", "no such run folder"], None)),
    ("compare no runs", lambda ws: (["compare", ws.folder("empty")], ["empty", "no run folders"], None)),
    ("compare --out under /proc", lambda ws: (["compare", ws.folder("x"), "--out", "/proc/x"], ["--out", "/proc/x"], None)),
    ("compare --out is a file", lambda ws: (["compare", ws.folder("x"), "--out", ws.text("f.csv")], ["--out", "f.csv"], None)),
    ("compare metrics.json corrupt", lambda ws: (["compare", ws.run_folder(**{"metrics.json": "{", "config.yaml": "a: 1"})],
                                                 ["metrics.json: not valid JSON"], None)),
    ("compare metrics.json a list", lambda ws: (["compare", ws.run_folder(**{"metrics.json": "[]", "config.yaml": "a: 1"})],
                                                ["metrics.json: expected a JSON object"], None)),
    ("compare metrics.json nested deep", lambda ws: (
        ["compare", ws.run_folder(**{"metrics.json": "[" * 200_000 + "]" * 200_000, "config.yaml": "a: 1"})],
        ["metrics.json: not valid JSON"], None)),
    ("compare metrics.json wrong types", lambda ws: (
        ["compare", ws.run_folder(**{"metrics.json": json.dumps({"seed": "zero", "main_metric": "a", "dev": {"a": 1},
                                                                 "test": {"a": 1}, "features": 5, "head": "t"}),
                                     "config.yaml": "dataset: {}\nfeatures: {}\n"})],
        ["metrics.json: a value has the wrong type"], None)),
    ("compare unequal budgets", lambda ws: (["compare", ws.runs_of_two_budgets(), "--out", ws.p("cmp")],
                                            ["different budgets", "trainer.epochs", "--allow-unequal"], ws.p("cmp"))),
    # -- bench
    ("bench suite missing", lambda ws: (["bench", ws.p("s.yaml")], ["suite file not found", "s.yaml"], None)),
    ("bench suite is a folder", lambda ws: (["bench", ws.folder("s.yaml")], ["suite file is a folder"], None)),
    ("bench seeds 0", lambda ws: (["bench", ws.suite(), "--seeds", "0", "--out", ws.p("b")], ["--seeds"], ws.p("b"))),
    ("bench seeds 2**70", lambda ws: (["bench", ws.suite(), "--seeds", str(2**70), "--out", ws.p("b")], ["--seeds"], ws.p("b"))),
    ("bench jobs 0", lambda ws: (["bench", ws.suite(), "--jobs", "0", "--out", ws.p("b")], ["--jobs"], ws.p("b"))),
    ("bench --out is a file", lambda ws: (["bench", ws.suite(), "--out", ws.text("b")], ["--out", "not a folder"], None)),
    ("bench suite name leaves runs/bench", lambda ws: (["bench", ws.suite("name: ../../../elsewhere\ntasks: []\n")],
                                                       ["suite.yaml", "name", "outside runs/bench/"], None)),
    ("bench suite bomb", lambda ws: (["bench", ws.suite(laughs()), "--out", ws.p("b")], ["suite.yaml, line", "aliases expand"], ws.p("b"))),
    ("bench config error", lambda ws: (["bench", ws.suite(yaml.safe_dump({"tasks": [
        {"name": "t", "glove": str(ws.config("g.yaml", trainer__lr=-1)), "glove_elmo": str(ws.config("g.yaml", trainer__lr=-1))}]})),
        "--out", ws.p("b")], ["g.yaml", "trainer.lr"], ws.p("b"))),
    # -- cache
    ("cache config without elmo", lambda ws: (["cache", ws.config()], ["c.yaml", "features.elmo is not set"], None)),
    ("cache config missing", lambda ws: (["cache", ws.p("none.yaml")], ["config file not found"], None)),
    ("cache dir under a file", lambda ws: (["cache", ws.config(base="wnut16_elmo.yaml",
                                                                features__elmo__cache_dir=str(ws.text("f.txt") / "c"))],
                                           ["feature cache", "f.txt"], None)),
    ("cache model folder incomplete", lambda ws: (["cache", ws.config(base="wnut16_elmo.yaml", features__elmo__model=str(ws.folder("m")))],
                                                  ["c.yaml", "features.elmo.model"], None)),
    # -- pretrain
    ("pretrain config missing", lambda ws: (["pretrain", ws.p("p.yaml"), "--out", ws.p("o")], ["config file not found", "p.yaml"], ws.p("o"))),
    ("pretrain config is a folder", lambda ws: (["pretrain", ws.folder("p.yaml"), "--out", ws.p("o")], ["is a folder"], ws.p("o"))),
    ("pretrain --out is a file", lambda ws: (["pretrain", Path(__file__).parents[1] / "configs/pretrain/tiny.yaml",
                                              "--out", ws.text("o")], ["--out", "not a folder"], None)),
    ("pretrain resume without a folder", lambda ws: (["pretrain", Path(__file__).parents[1] / "configs/pretrain/tiny.yaml",
                                                      "--out", ws.p("o"), "--resume"], ["--resume", ws.p("o")], ws.p("o"))),
    ("pretrain export-only without resume", lambda ws: (["pretrain", Path(__file__).parents[1] / "configs/pretrain/tiny.yaml",
                                                         "--out", ws.p("o"), "--export-only"], ["--export-only"], ws.p("o"))),
    # -- convert
    ("convert source missing", lambda ws: (["convert", ws.p("nomodel"), ws.p("out")], ["nomodel"], ws.p("out"))),
    ("convert source not a model", lambda ws: (["convert", ws.text(), ws.p("out")], ["in.txt", "not an ELMo model"], ws.p("out"))),
    ("convert output is a file", lambda ws: (["convert", ws.model(), ws.text("out")], ["out", "not a folder"], None)),
    ("convert tar with a member leaving it", lambda ws: (["convert", _evil_tar(ws), ws.p("out")],
                                                         ["evil.tar", "outside the archive"], ws.p("out"))),
    ("convert options file missing", lambda ws: (["convert", _evil_tar(ws), ws.p("out"), "--options", ws.p("no.json")],
                                                 ["no.json"], ws.p("out"))),
    # -- data
    ("data prepare --out is a file", lambda ws: (["data", "prepare", "wnut16", "--out", ws.text("d")], ["--out", "not a folder"], None)),
    ("data prepare unknown set", lambda ws: (["data", "prepare", "nosuchset", "--out", ws.p("d")], ["nosuchset"], ws.p("d"))),
    ("data prepare no name", lambda ws: (["data", "prepare", "--out", ws.p("d")], ["name a set"], ws.p("d"))),
    ("data corpus --out is a file", lambda ws: (["data", "corpus", "--out", ws.text("corpus")], ["--out", "not a folder"], None)),
    ("data corpus --out under a file", lambda ws: (["data", "corpus", "--out", ws.text("f") / "c"], ["--out", "is a file"], None)),
    ("data corpus unknown source", lambda ws: (["data", "corpus", "--sources", "moon", "--out", ws.p("c")], ["--sources", "moon"], ws.p("c"))),
    ("data corpus heldout fraction", lambda ws: (["data", "corpus", "--heldout-fraction", "2", "--out", ws.p("c")],
                                                 ["--heldout-fraction"], ws.p("c"))),
]


def test_the_table_is_large():
    assert len(CASES) >= 60 and len({name for name, _ in CASES}) == len(CASES)


@pytest.mark.parametrize("build", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, capsys, monkeypatch, build):
    ws = Workspace(tmp_path / "ws")
    ws.root.mkdir()
    monkeypatch.chdir(ws.root)  # default outputs (runs/...) land here
    argv, words, output = build(ws)
    before = sorted(str(p) for p in ws.root.rglob("*"))
    capsys.readouterr()
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("elmo-tasks: error: "), err
    for word in words:
        assert str(word) in err, f"{word!r} not in {err!r}"
    if output is not None:
        assert not output.exists(), f"{output} was written"
    assert not (ws.root / "PWNED").exists()  # no code ran from a file
    temporaries = [p for p in tmp_path.rglob("*") if ".tmp-" in p.name or p.name == ".lock" or p.name.endswith(".lock")]
    assert temporaries == []
    assert set(before) <= {str(p) for p in ws.root.rglob("*")}  # no input destroyed


def test_a_cache_meta_json_that_is_a_list_is_rebuilt(tmp_path, capsys):
    config = Workspace(tmp_path).config(base="wnut16_elmo.yaml", features__elmo__cache_dir=str(tmp_path / "cache"))
    assert main(["cache", str(config), "--quiet"]) == 0
    metas = list((tmp_path / "cache").rglob("meta.json"))
    assert len(metas) == 3
    metas[0].write_text("[]")
    capsys.readouterr()
    assert main(["cache", str(config), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.count("built") == 1 and out.count("cached") == 2
    assert json.loads(metas[0].read_text())["format"] == 1
