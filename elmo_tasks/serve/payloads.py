"""Request bodies checked into work items, and answers encoded.

``/v1/embed`` takes ``{"inputs": ["raw sentence", ...]}`` (Penn-Treebank-tokenised by
``elmo_tasks.data.tokenize``) or ``{"tokens": [["tok", ...], ...]}``, with ``output`` (``layers``:
(3, n, 2P) per sentence, ``top`` or ``average``: (n, 2P)), ``pool`` (``mean``: without the token
axis) and ``encoding_format`` (``float``: JSON numbers, each float32 written in the fewest digits
that read back to the same float32; ``base64``: each array's little-endian float32 bytes, C order,
with its shape in ``shapes``). The shapes are those ``embed-file`` writes (``dump.reduce_layers``).

Answers are encoded by orjson, which writes numpy arrays itself: on a 2-core Intel Xeon a (16, 256)
float32 array took 0.13 ms, against 2.1 ms for ``json.dumps(array.tolist())``, in half the bytes.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from elmo_tasks.data.tokenize import tokenize
from elmo_tasks.serve.errors import ApiError
from elmo_tasks.serve.limits import Limits, check_tokens

OUTPUTS = {"layers": "all", "top": "top", "average": "average"}  # the API's names -> dump.reduce_layers' names


class EmbedRequest(BaseModel):
    """The body of ``POST /v1/embed``: exactly one of ``inputs`` and ``tokens``."""

    model_config = ConfigDict(strict=True, extra="forbid")
    inputs: list[str] | None = Field(None, description="raw sentences, split into Penn-Treebank tokens")
    tokens: list[list[str]] | None = Field(None, description="sentences already split into tokens")
    output: Literal["layers", "top", "average"] = Field("layers", description="layers: (3, n, 2P) per sentence; "
                                                       "top: the last layer (n, 2P); average: the mean of the layers")
    pool: Literal["none", "mean"] = Field("none", description="mean: the mean over tokens (a sentence vector)")
    encoding_format: Literal["float", "base64"] = Field("float", description="float: JSON numbers; base64: "
                                                        "little-endian float32 bytes of each array, shapes in 'shapes'")


class PredictRequest(BaseModel):
    """The body of ``POST /v1/models/{name}:predict``: what ``TaskModel.predict`` takes."""

    model_config = ConfigDict(strict=True, extra="forbid")
    instances: list[Any] = Field(description="raw strings, token lists, {'text': ...}, {'tokens': [...]}, or "
                                 "{'tokens': [...], 'target': i} for word senses")


@dataclass(frozen=True)
class EmbedItem:
    """One sentence of an embedding request: its tokens and how its layers are reduced."""

    tokens: list[str]
    layers: str  # all | top | average (dump.reduce_layers)
    pool: str  # none | mean


@dataclass
class Work:
    """A checked request: its items for the worker, each item's cost in tokens, how to answer."""

    items: list
    costs: list[int]
    encoding: str = "float"

    @property
    def tokens(self) -> int:
        return sum(self.costs)


def parse_json(body: bytes) -> Any:
    """The body as JSON; 400 with the position when it is not (deep nesting included)."""
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the body is not UTF-8 ({exc.reason} at byte {exc.start})", field="body") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                       field="body") from None
    except RecursionError:
        raise ApiError(400, "the body is not valid JSON: nested too deeply", field="body") from None


def _field(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def validate(model: type[BaseModel], data: Any) -> BaseModel:
    """``data`` as ``model``; 422 naming the first wrong field (and how many more there are)."""
    if not isinstance(data, dict):
        raise ApiError(422, f"the body must be a JSON object, got {type(data).__name__}", field="body")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        field = _field(first["loc"])
        if first["type"] == "extra_forbidden":
            message = f"{field}: unknown field (expected {', '.join(model.model_fields)})"
        else:
            message = f"{field}: {first['msg'][0].lower() + first['msg'][1:]}"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ApiError(422, message + more, field=field) from None


def embed_work(data: Any, limits: Limits) -> Work:
    """The sentences of an embedding request, tokenised and counted (422 / 413 before any work)."""
    request = validate(EmbedRequest, data)
    if (request.inputs is None) == (request.tokens is None):
        raise ApiError(422, "give exactly one of 'inputs' (raw sentences) and 'tokens' (token lists)",
                       field="inputs" if request.inputs is not None else "body")
    field = "inputs" if request.inputs is not None else "tokens"
    given = request.inputs if request.inputs is not None else request.tokens
    if not given:
        raise ApiError(422, f"{field}: empty: give at least one sentence", field=field)
    # a sentence costs at least 1: a request of many empty sentences is bounded too
    check_tokens(len(given), limits, field)
    if request.inputs is not None:
        check_tokens(sum(len(text.split()) for text in request.inputs), limits, field)  # before the tokeniser runs
        sentences = [tokenize(text) for text in request.inputs]
    else:
        sentences = request.tokens
        for i, sentence in enumerate(sentences):
            for j, token in enumerate(sentence):
                if not token:
                    raise ApiError(422, f"tokens[{i}][{j}]: empty token", field=f"tokens[{i}][{j}]")
    costs = [max(1, len(s)) for s in sentences]
    check_tokens(sum(costs), limits, field)
    layers = OUTPUTS[request.output]
    return Work([EmbedItem(s, layers, request.pool) for s in sentences], costs, request.encoding_format)


def encode_embeddings(items: list[EmbedItem], arrays: list[np.ndarray], encoding: str) -> bytes:
    """The answer ``{"tokens": [...], "embeddings": [...]}`` (+ ``shapes`` for base64) as JSON bytes."""
    answer: dict[str, Any] = {"tokens": [item.tokens for item in items]}
    if encoding == "base64":
        answer["shapes"] = [list(a.shape) for a in arrays]
        answer["embeddings"] = [base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")
                                for a in arrays]
    else:
        answer["embeddings"] = [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]
    return encode_json(answer)


def encode_json(answer: Any) -> bytes:
    """Compact JSON (numpy arrays and scalars as numbers); a non-finite number is a ValueError, not ``null``."""
    for array in _arrays(answer):
        if not np.isfinite(array).all():
            raise ValueError("the answer holds a number that is not finite")
    return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)


def _arrays(answer: Any) -> list[np.ndarray]:
    """The numpy arrays directly under ``answer["embeddings"]`` (where the answers hold them)."""
    if isinstance(answer, dict) and isinstance(answer.get("embeddings"), list):
        return [a for a in answer["embeddings"] if isinstance(a, np.ndarray)]
    return []


def decode_base64(text: str, shape: list[int]) -> np.ndarray:
    """The inverse of the base64 encoding, for clients and tests."""
    return np.frombuffer(base64.b64decode(text), dtype="<f4").reshape(shape)
