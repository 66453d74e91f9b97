"""The public ELMo models users name, as plain data: name -> where its files are and what it is.

AllenNLP's releases are an ``options.json`` + ``weights.hdf5`` pair; TF-Hub modules and NLPL
repository entries are one archive each (converted by ``elmo_tasks.formats``). None of the sources
publishes sizes or checksums, so none is recorded here: the downloader records the sha256 of the
first download in its cache manifest and refuses a later download of the same URL that differs.
Parameter counts are computed from the released options (``docs/models.md``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

ALLENNLP = "https://s3-us-west-2.amazonaws.com/allennlp/models/elmo"
# the other host form AllenNLP's code and docs carry: the same bucket, the same files
ALLENNLP_HOSTS = ("https://allennlp.s3.amazonaws.com/", "http://allennlp.s3.amazonaws.com/",
                  "https://s3.amazonaws.com/allennlp/", "https://allennlp.s3-us-west-2.amazonaws.com/",
                  "s3://allennlp/")
ALLENNLP_CANONICAL = "https://s3-us-west-2.amazonaws.com/allennlp/"
TFHUB = "https://tfhub.dev/google/elmo"
TFHUB_COMPRESSED = "?tf-hub-format=compressed"
NLPL = "http://vectors.nlpl.eu/repository/20"
ONE_BILLION = "1B Word Benchmark (about 800M tokens of news)"


@dataclass(frozen=True)
class RegisteredModel:
    """One public model: its file URLs (``options``/``weights`` for a pair, ``archive`` otherwise)."""

    name: str
    kind: Literal["hdf5", "tfhub", "nlpl"]
    source: str
    licence: str
    training_data: str
    parameters: int | None = None  # None: read from the options once downloaded
    options: str | None = None
    weights: str | None = None
    archive: str | None = None
    aliases: tuple[str, ...] = ()
    handles: tuple[str, ...] = ()  # other URLs users write for it (TF-Hub and Kaggle handles)

    @property
    def urls(self) -> tuple[str, ...]:
        """The files to download, in order (the options before the weights they are checked against)."""
        return tuple(u for u in (self.options, self.weights, self.archive) if u)


def _allennlp(name: str, stem: str, parameters: int, data: str, folder: str | None = None,
              weights: str | None = None, aliases: tuple[str, ...] = ()) -> RegisteredModel:
    base = f"{ALLENNLP}/{folder or stem}/elmo_{stem}"
    return RegisteredModel(name, "hdf5", "AllenNLP", "Apache-2.0 (AllenNLP)", data, parameters,
                           options=f"{base}_options.json", weights=weights or f"{base}_weights.hdf5", aliases=aliases)


def _tfhub(version: int) -> RegisteredModel:
    handle = f"{TFHUB}/{version}"
    kaggle = (f"https://www.kaggle.com/models/google/elmo/TensorFlow1/elmo/{version}",
              f"https://www.kaggle.com/models/google/elmo/frameworks/TensorFlow1/variations/elmo/versions/{version}")
    return RegisteredModel(f"tfhub-elmo-{version}", "tfhub", f"TF-Hub google/elmo/{version}", "Apache-2.0",
                           ONE_BILLION, 93_600_848, archive=handle + TFHUB_COMPRESSED,
                           aliases=(f"google/elmo/{version}",), handles=(handle, *kaggle))


def nlpl_model(ident: int, data: str = "see the archive's meta.json") -> RegisteredModel:
    """An NLPL repository entry by its numeric ID (``nlpl-ID`` names any of them)."""
    return RegisteredModel(f"nlpl-{ident}", "nlpl", f"NLPL repository #{ident}", "CC-BY-4.0 (NLPL repository)", data,
                           archive=f"{NLPL}/{ident}.zip")


_PUBMED = f"{ALLENNLP}/contributed/pubmed/elmo_2x4096_512_2048cnn_2xhighway"
MODELS: dict[str, RegisteredModel] = {m.name: m for m in (
    _allennlp("small", "2x1024_128_2048cnn_1xhighway", 13_593_296, ONE_BILLION),
    _allennlp("medium", "2x2048_256_2048cnn_1xhighway", 28_027_728, ONE_BILLION),
    _allennlp("original", "2x4096_512_2048cnn_2xhighway", 93_600_848, ONE_BILLION, aliases=("large",)),
    _allennlp("original-5.5B", "2x4096_512_2048cnn_2xhighway_5.5B", 93_600_848,
              "Wikipedia (1.9B) + WMT 2008-2012 news crawl (3.6B)", aliases=("5.5B",)),
    RegisteredModel("pubmed", "hdf5", "AllenNLP (contributed)", "Apache-2.0 (AllenNLP)", "PubMed abstracts",
                    93_600_848, options=f"{_PUBMED}_options.json",
                    weights=f"{_PUBMED}_weights_PubMed_only.hdf5"),
    _tfhub(2),
    _tfhub(3),
    nlpl_model(209, "English Wikipedia"),
)}
_NLPL_NAME = re.compile(r"^nlpl[-:](\d{1,6})$")


def canonical_url(url: str) -> str:
    """One spelling per file: AllenNLP's host forms become the s3-us-west-2 one, handles lose a trailing slash."""
    for host in ALLENNLP_HOSTS:
        if url.startswith(host):
            return ALLENNLP_CANONICAL + url[len(host):]
    return url.rstrip("/") if "?" not in url else url


def _by_alias() -> dict[str, RegisteredModel]:
    table: dict[str, RegisteredModel] = {}
    for model in MODELS.values():
        for key in (model.name, *model.aliases):
            table[key.lower()] = model
    return table


_ALIASES = _by_alias()


def find(name_or_url: str) -> RegisteredModel | None:
    """The registered model a name, alias, ``nlpl-ID``, handle or one of its file URLs names; else None."""
    key = name_or_url.strip()
    if key.lower() in _ALIASES:
        return _ALIASES[key.lower()]
    match = _NLPL_NAME.match(key.lower())
    if match:
        return MODELS.get(f"nlpl-{int(match.group(1))}") or nlpl_model(int(match.group(1)))
    url = canonical_url(key)
    for model in MODELS.values():
        if url in model.urls or url.lower() in (h.lower() for h in model.handles):
            return model
    return None


def is_url(text: str) -> bool:
    """Whether ``text`` is an http(s) or s3 URL (what the downloader takes)."""
    return re.match(r"^(https?|s3)://[^/\s]+", str(text)) is not None
