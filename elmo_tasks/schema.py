"""The one typed loader: a YAML or JSON mapping into plain dataclasses, checked on load.

:func:`build` fills dataclass ``cls`` from a mapping, recursing into nested dataclasses, and
raises a :class:`ConfigError` naming the file and the dotted key for an unknown key, a missing
key or a value of the wrong type. Experiment configs (``elmo_tasks.experiment``), pretraining
configs (``elmo_tasks.pretrain.settings``) and ``options.json`` (``elmo_tasks.bilm.options``) all
go through it. A nested section whose field has a default instance takes that instance's values
for the keys it does not set (so a pretraining ``model:`` section starts from the small model).

Field metadata: ``{"key": False}`` keeps a field out of the file (filled in by the code);
``{"unknown": True}`` on a ``dict`` field collects the keys the dataclass does not know instead
of rejecting them (``options.json`` keeps training-only fields).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from elmo_tasks.errors import UserError
from elmo_tasks.paths import input_file_problem


class ConfigError(UserError):
    """A config problem; the message starts with the file, then the dotted key.

    Code that checks a section without knowing its file (a head checking its options) raises
    ``ConfigError(message, key=...)``; the loader adds the file with :meth:`Source.locate`.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class Source:
    """Where values came from: the file, and for merged configs the file that set each dotted key.

    ``quoted`` writes keys as ``key 'lstm.dim' must be ...`` (the style of ``options.json`` and
    pretraining errors) instead of ``trainer.epochs: must be ...``.
    """

    def __init__(self, path: str | Path, origins: dict[str, str] | None = None, quoted: bool = False) -> None:
        self.path, self.origins, self.quoted = str(path), origins or {}, quoted

    def file_of(self, key: str) -> str:
        parts = key.split(".")
        files = (self.origins.get(".".join(parts[:n])) for n in range(len(parts), 0, -1))
        return next((f for f in files if f is not None), self.path)

    def error(self, key: str, message: str) -> ConfigError:
        """``FILE: KEY: message``, FILE being the file that set ``key`` (or its nearest parent)."""
        if not key:
            return ConfigError(f"{self.path}: {message}", key)
        said = f"key '{key}' {message}" if self.quoted else f"{key}: {message}"
        return ConfigError(f"{self.file_of(key)}: {said}", key)

    def unknown(self, key: str, known: list[str]) -> ConfigError:
        if self.quoted:
            return ConfigError(f"{self.file_of(key)}: unknown key '{key}' (known: {', '.join(known)})", key)
        return self.error(key, f"unknown key (known here: {', '.join(known)})")

    def missing(self, key: str) -> ConfigError:
        if self.quoted:
            return ConfigError(f"{self.file_of(key)}: missing key '{key}'", key)
        return self.error(key, "missing")

    def locate(self, exc: ConfigError) -> ConfigError:
        """A file-less ``ConfigError(message, key=...)`` raised by a check, with the file added."""
        return self.error(exc.key or "", str(exc))


MAX_YAML_VALUES = 100_000  # values a YAML document may hold once its aliases are expanded


def parse_yaml(path: Path, error: type[UserError] = ConfigError, what: str = "config file") -> Any:
    """The YAML document in ``path`` (``what`` names it in errors); a syntax error is
    ``error("PATH, line N: ...")``.

    Safe loading only, and aliases are bounded: a document whose aliases would expand to more than
    ``MAX_YAML_VALUES`` values ("billion laughs") or that refers to itself is refused, naming the line.
    """
    problem = input_file_problem(path, what)
    if problem is not None:
        raise error(problem)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not valid YAML (not UTF-8 text: {exc.reason} at byte {exc.start})") from None
    return parse_yaml_text(text, str(path), error)


def parse_yaml_text(text: str, where: str, error: type[UserError] = ConfigError, lines: bool = True) -> Any:
    """The YAML document in ``text``, safely and with bounded aliases; errors start with ``where``
    (and name the line unless ``lines`` is false: a value on the command line)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, {}, set(), where, error)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None and lines else ""
        raise error(f"{where}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except RecursionError:
        raise error(f"{where}: not valid YAML (nested too deeply)") from None
    finally:
        loader.dispose()


_DOTTED_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def parse_assignments(texts: list[str], flag: str = "--set") -> dict[str, Any]:
    """``KEY=VALUE`` strings (dotted keys, values read as YAML: ``5``, ``0.1``, ``true``, ``null``,
    ``[a, b]``, ``{name: tagger}``) -> {dotted key: value}; a malformed one is a ConfigError naming it."""
    out: dict[str, Any] = {}
    for text in texts:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not _DOTTED_KEY.match(key):
            raise ConfigError(f"{flag} {text!r}: expected KEY=VALUE with a dotted config key, e.g. {flag} trainer.epochs=5")
        out[key] = parse_yaml_text(value, f"{flag} {key}", lines=False)
    return out


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int], path: str | Path,
                   error: type[UserError]) -> int:
    """How many values ``node`` holds with every alias expanded (each shared node counted once per
    use, computed once); a node inside itself or a total over ``MAX_YAML_VALUES`` is an error."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    line = node.start_mark.line + 1
    if key in open_nodes:
        raise error(f"{path}, line {line}: an alias refers to the value that contains it (a recursive structure)")
    size = 1
    if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)):
        open_nodes.add(key)
        children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
        for child in children:
            size += _expanded_size(child, sizes, open_nodes, path, error)
            if size > MAX_YAML_VALUES:
                raise error(f"{path}, line {line}: aliases expand to more than {MAX_YAML_VALUES:,} values "
                            "(a YAML bomb?); write the values out")
        open_nodes.discard(key)
    sizes[key] = size
    return size


def dump_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)


def describe_value(value: Any) -> str:
    """A value as an error message shows it: kind for mappings and lists, else repr and type."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return f"{value!r} ({type(value).__name__})"


def keys_of(cls: type) -> list[str]:
    """The keys a file may set for dataclass ``cls``."""
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("key", True) and not f.metadata.get("unknown")]


def build(cls: type, data: Any, source: Source, prefix: str = "", given: dict[str, Any] | None = None,
          base: Any = None) -> Any:
    """An instance of dataclass ``cls`` from a mapping, checking keys and types.

    ``given``: fields built already (not keys); ``base``: an instance whose values stand for the
    keys ``data`` leaves out (else each field's default).
    """
    given = given or {}
    where = prefix.rstrip(".")
    if not isinstance(data, dict):
        raise source.error(where, f"must be a mapping, got {describe_value(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    keys = keys_of(cls)
    known = [n for n in keys if n not in given]
    collect = next((f.name for f in fields.values() if f.metadata.get("unknown")), None)
    values = dict(given)
    unknown = {}
    for key in data:
        if key not in keys:
            if collect is None:
                raise source.unknown(f"{prefix}{key}", keys)
            unknown[key] = data[key]
    if collect is not None:
        values[collect] = unknown
    for name in known:
        f = fields[name]
        key = f"{prefix}{name}"
        if name in data:
            default = getattr(base, name) if base is not None else _default(f)
            values[name] = convert(hints[name], data[name], key, source, default)
        elif base is not None:
            values[name] = getattr(base, name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise source.missing(key)
    return cls(**values)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def type_name(tp: Any) -> str:
    """How a message names a type: ``an integer``, ``one of 'a', 'b'``, ``a list of numbers``."""
    origin = typing.get_origin(tp)
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    if tp in names:
        return names[tp]
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp) if a != "")
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {type_name(typing.get_args(tp)[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a mapping"
    return str(tp)


class _Mismatch(Exception):
    pass


def convert(tp: Any, value: Any, key: str, source: Source, default: Any = None) -> Any:
    """``value`` checked against type ``tp`` (ints widen to floats; mappings become dataclasses)."""
    try:
        return _convert(tp, value, key, source, default)
    except _Mismatch:
        raise source.error(key, f"must be {type_name(tp)}, got {describe_value(value)}") from None


def _convert(tp: Any, value: Any, key: str, source: Source, default: Any) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise _Mismatch
        for arg in args:  # a dataclass member is built from a mapping ({} means "all defaults")
            if dataclasses.is_dataclass(arg) and isinstance(value, dict):
                return build(arg, value, source, key + ".", base=default if isinstance(default, arg) else None)
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, key, source, default)
            except _Mismatch:
                continue
        raise _Mismatch
    if dataclasses.is_dataclass(tp):
        return build(tp, {} if value is None else value, source, key + ".",
                     base=default if isinstance(default, tp) else None)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if origin is list:
        if not isinstance(value, list):
            raise _Mismatch
        (item,) = typing.get_args(tp)
        return [convert(item, v, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        _, item = typing.get_args(tp)
        return {str(k): convert(item, v, f"{key}.{k}", source) for k, v in value.items()}
    raise TypeError(f"config schema: unsupported type {tp} for {key}")
