"""TF-Hub ELMo modules (``google/elmo/2``, ``/3`` and modules exported the same way).

A module is a folder with ``variables/variables.{index,data-*}`` (and ``saved_model.pb``,
``tfhub_module.pb``, which are not needed here), or its ``.tar.gz`` as tfhub.dev serves it. Its
variables are bilm-tf's inference graph under ``bilm/`` plus the module's trained layer mix
``aggregation/weights`` (3 pre-softmax weights) and ``aggregation/scaling`` (shape [] or [1]).
The mix is written to ``aggregation.json`` beside the model (``elmo_tasks.compat.tfhub`` reads it
back with ``read_aggregation_file``).

An archive is read in two passes over its stream (``archive_limits`` bounds both): the first
unpacks only the variables index, which is checked whole (sizes, shapes, dtypes); the second
unpacks only the bytes of each data shard that the model's tensors occupy, and stops there. The
extraction folder is ``$TMPDIR/elmo-tasks-tfhub.tmp-PID-HOST-*``: a killed conversion's folder is
removed by the next one. Errors about the archive's content name the archive and the member.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from elmo_tasks.atomic import make_temp_dir, write_text_atomic
from elmo_tasks.bilm.weights import check_finite, count_parameters
from elmo_tasks.errors import UserError
from elmo_tasks.formats.archive_limits import TAR_ERRORS, copy_member, looks_like_tar, tar_members, weights_limit
from elmo_tasks.formats.tf_bundle import MAX_INDEX_BYTES, TensorBundle
from elmo_tasks.formats.tf_elmo import FLOAT32, ElmoVariables, find_elmo, write_elmo
from elmo_tasks.paths import read_json_file

VARIABLES = Path("variables") / "variables"
AGGREGATION_NAME = "aggregation.json"
AGGREGATION = ("aggregation/weights", "aggregation/scaling")
TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")
EXTRACTION = "elmo-tasks-tfhub"  # $TMPDIR/elmo-tasks-tfhub.tmp-PID-HOST-XXXXXXXX while converting
_MEMBER = re.compile(r"^(?P<root>(?:.+/)?)variables/variables\.(?P<kind>index|data-\d{5}-of-\d{5})$")


def is_module_dir(path: Path) -> bool:
    return path.is_dir() and Path(f"{path / VARIABLES}.index").is_file()


def is_module_archive(path: Path) -> bool:
    """A file named like a module archive, or a (gzipped) tar file: its first header only is read."""
    return path.is_file() and (path.name.endswith(TAR_SUFFIXES) or looks_like_tar(path))


# -- the archive ---------------------------------------------------------------------------------

def _variables_members(archive: Path):
    """(member, root, kind, tar) for the members named ``[ROOT/]variables/variables.{index,data-*}``."""
    for member, path, tar in tar_members(archive):
        match = _MEMBER.match(str(path))
        if match:
            if not member.isfile():
                what = "link" if member.issym() or member.islnk() else "folder" if member.isdir() else "special file"
                raise UserError(f"{archive}: member '{member.name}' is a {what}, not a regular file")
            yield member, match["root"], match["kind"], tar


def extract_index(archive: Path, into: Path) -> str:
    """Unpack the module's ``variables/variables.index`` into ``into/variables/``; returns the folder
    it is in inside the archive ("" or "elmo3/"). One pass over the whole archive."""
    roots: dict[str, None] = {}
    try:
        for member, root, kind, tar in _variables_members(archive):
            if kind != "index":
                continue
            roots[root] = None
            if member.size > MAX_INDEX_BYTES:
                raise UserError(f"{archive}: member '{member.name}' is {member.size:,} bytes, over the "
                                f"{MAX_INDEX_BYTES >> 20} MiB an ELMo module's index needs")
            (into / "variables").mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(f"{into / VARIABLES}.index", "wb") as dst:
                copy_member(archive, member.name, src, dst, MAX_INDEX_BYTES)
    except TAR_ERRORS as exc:
        raise UserError(f"{archive}: not a readable TF-Hub module archive ({exc})") from None
    if not roots:
        raise UserError(f"{archive}: no variables/variables.index inside: not a TF-Hub module")
    if len(roots) > 1:
        shown = ", ".join(f"'{r or './'}'" for r in roots)
        raise UserError(f"{archive}: holds {len(roots)} TF-Hub modules ({shown}): unpack it and give one module folder")
    return next(iter(roots))


def extract_data(archive: Path, into: Path, root: str, bundle: TensorBundle, extents: dict[int, int]) -> None:
    """Unpack, of each data shard under ``root``, the first ``extents[shard]`` bytes (what the model's
    tensors occupy); stops as soon as every needed shard is out."""
    wanted = {bundle.data_path(shard).name: (shard, size) for shard, size in extents.items()}
    try:
        for member, member_root, _kind, tar in _variables_members(archive):
            name = PurePosixPath(member.name).name
            if member_root != root or name not in wanted:
                continue
            _shard, size = wanted.pop(name)
            with tar.extractfile(member) as src, open(into / "variables" / name, "wb") as dst:
                copy_member(archive, member.name, src, dst, size)
            if not wanted:
                break
    except TAR_ERRORS as exc:
        raise UserError(f"{archive}: not a readable TF-Hub module archive ({exc})") from None


# -- the module ----------------------------------------------------------------------------------

def find_aggregation(bundle: TensorBundle, n_layers: int) -> tuple[str, str] | None:
    """The module's layer-mix variables, checked from the index (float32, one weight per layer, a scalar scale)."""
    present = [name for name in AGGREGATION if name in bundle.entries]
    if not present:
        return None
    if len(present) == 1:
        raise UserError(f"{bundle.index_path}: has variable '{present[0]}' without "
                        f"'{(set(AGGREGATION) - set(present)).pop()}': not a TF-Hub ELMo module's layer mix")
    weights, scaling = (bundle.entry(name) for name in AGGREGATION)
    for entry in (weights, scaling):
        if entry.dtype != FLOAT32:
            raise UserError(f"{bundle.index_path}: variable '{entry.name}' holds {entry.dtype_name}, not float32")
    if len(weights.shape) != 1 or weights.shape[0] != n_layers:
        raise UserError(f"{bundle.index_path}: variable 'aggregation/weights' has shape {list(weights.shape)}, but "
                        f"the model has {n_layers} layers")
    if scaling.shape not in ((), (1,)):
        raise UserError(f"{bundle.index_path}: variable 'aggregation/scaling' has shape {list(scaling.shape)}, "
                        "expected [] or [1]")
    return AGGREGATION


def read_aggregation(bundle: TensorBundle) -> dict:
    """The module's layer mix: {"weights": [w0, w1, w2] (pre-softmax), "scaling": gamma}, checked finite."""
    values = {}
    for name in AGGREGATION:
        array = bundle.read(name)
        check_finite(array, f"variable '{name}'", bundle.data_path(bundle.entries[name].shard))
        values[name] = [float(v) for v in array.reshape(-1)]
    return {"weights": values["aggregation/weights"], "scaling": values["aggregation/scaling"][0]}


def read_aggregation_file(path: Path, n_layers: int) -> tuple[list[float], float]:
    """(weights, scaling) from an ``aggregation.json``: ``n_layers`` finite weights and a finite scale."""
    data = read_json_file(path, "layer-mix file")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object with 'weights' and 'scaling'")

    def finite(value: object) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    weights, scaling = data.get("weights"), data.get("scaling")
    if not isinstance(weights, list) or len(weights) != n_layers or not all(finite(w) for w in weights):
        raise UserError(f"{path}: 'weights' must be a list of {n_layers} finite numbers (one per layer), "
                        f"got {weights!r:.80}")
    if not finite(scaling):
        raise UserError(f"{path}: 'scaling' must be a finite number, got {scaling!r:.80}")
    return [float(w) for w in weights], float(scaling)


def _find(bundle: TensorBundle, options: dict | None, options_source: str | Path) -> tuple[ElmoVariables, tuple | None]:
    found = find_elmo(bundle, "bilm", options, options_source)
    return found, find_aggregation(bundle, found.options.n_layers + 1)


def _write(found: ElmoVariables, aggregation: tuple | None, out_dir: Path) -> None:
    mix = read_aggregation(found.bundle) if aggregation is not None else None
    write_elmo(found, out_dir)
    if mix is not None:
        write_text_atomic(out_dir / AGGREGATION_NAME, json.dumps(mix, indent=2) + "\n")


def convert_module(source: Path, out_dir: Path, options: dict | None = None,
                   options_source: str | Path = "--options") -> None:
    """Write the module at ``source`` (folder or archive) as a public-format model into ``out_dir``."""
    if is_module_archive(source):
        _convert_archive(source, out_dir, options, options_source)
        return
    if not is_module_dir(source):
        raise UserError(f"{source}: not a TF-Hub module (expected {VARIABLES}.index inside)")
    bundle = TensorBundle(source / VARIABLES)
    _write(*_find(bundle, options, options_source), out_dir)


def _convert_archive(archive: Path, out_dir: Path, options: dict | None, options_source: str | Path) -> None:
    into = make_temp_dir(Path(tempfile.gettempdir()) / EXTRACTION)  # a killed run's folder is swept here
    root = ""
    try:
        root = extract_index(archive, into)
        bundle = TensorBundle(into / VARIABLES)
        found, aggregation = _find(bundle, options, options_source)
        names = found.variables() + list(aggregation or ())
        extents = bundle.extents(names)
        limit = weights_limit(count_parameters(found.options))
        if sum(extents.values()) > limit:  # tensors far apart: unpacking them would write gigabytes of filler
            raise UserError(f"{bundle.index_path}: the model's variables lie in the first {sum(extents.values()):,} "
                            f"bytes of its data, over the {limit:,} a model of these sizes needs")
        extract_data(archive, into, root, bundle, extents)
        _write(found, aggregation, out_dir)
    except UserError as exc:  # name the archive and its member, not the extraction folder
        message = str(exc).replace(f"{into}/", f"{archive}: member {root}").replace(str(into), str(archive))
        raise UserError(message) from None
    finally:
        shutil.rmtree(into, ignore_errors=True)
