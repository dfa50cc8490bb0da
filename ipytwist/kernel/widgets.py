"""The kernel's live widget models and their latest state, from its iopub comm messages
(pure).

:class:`WidgetStore` follows the Jupyter widgets messaging protocol (2.1.0) as the kernel
publishes it: a ``comm_open`` with ``target_name`` ``jupyter.widget`` adds a model (its
``data`` is ``{state, buffer_paths}``, its binary ``buffers`` go at those paths), a
``comm_msg`` whose ``data.method`` is ``update`` or ``echo_update`` merges its partial
state into the model's, ``comm_close`` removes it, and :meth:`WidgetStore.clear` (a
restart) removes them all.  Other comm traffic (``custom`` messages, other targets) holds
no state and is passed over.  Each message costs time in proportion to its own size and
to the values it replaces (each added by a message of its own), however many models
there are.

:meth:`WidgetStore.to_json` is the ``application/vnd.jupyter.widget-state+json``
document nbclient's ``store_widget_state`` writes: buffers are taken out of the state
again and listed as base64 with their paths.

Memory is bounded, in the transcript's unit (:func:`.outputs.data_bytes`: UTF-8 bytes of
strings, a buffer as its base64 length, a fixed overhead an item) plus
:data:`MODEL_OVERHEAD` a model: at most ``max_bytes`` for all models.  Past it the oldest
models go first (a model larger than it on its own goes at once); they are counted in
:attr:`WidgetStore.dropped`.  A model set 100,000 times holds one state.

An ``Output`` widget captures what the request it names (its ``msg_id``) outputs, as
the frontend's Output model does: :meth:`WidgetStore.capture` puts those outputs in its
state's ``outputs`` (nbformat's JSON, consecutive stream text of one name merged), and
the transcript leaves them out of the cell (:mod:`.capture`; counted in the model's
size).  A frontend that syncs ``outputs`` back replaces them.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from .capture import CAPTURED, Captured
from .outputs import MAX_ID_CHARS, data_bytes
from .streamtext import text_bytes

__all__ = ["MODEL_OVERHEAD", "TARGET", "WIDGET_MESSAGES", "WidgetStore"]

#: The comm target of widget models.
TARGET = "jupyter.widget"
#: The iopub messages :meth:`WidgetStore.apply` takes (``status``: a restart).
WIDGET_MESSAGES = frozenset({"comm_open", "comm_msg", "comm_close", "status"})
#: Memory of a model besides its state (its objects and the store's entry), in bytes.
MODEL_OVERHEAD = 1024
#: The state keys that name a model's class, as the state document lists them.
_NAME_KEYS = ("_model_name", "_model_module", "_model_module_version")

_log = Logger()
_Path = list[str | int]


class Malformed(ValueError):
    """A widget message that does not follow the protocol (the reason, never the data)."""


class _Model:
    __slots__ = ("state", "size", "binary", "captured")

    def __init__(self, state: dict[str, Any], size: int, binary: bool) -> None:
        self.state = state
        self.size = size
        #: Whether a message put bytes in its state (if not, none are looked for).
        self.binary = binary
        #: What an Output model captured since its ``outputs`` were last set.
        self.captured: Captured | None = None


class WidgetStore:
    """The latest state of every live widget model of one kernel, by model (comm) id."""

    def __init__(self, max_bytes: int, warn: Callable[[str], None] | None = None) -> None:
        self.max_bytes = max_bytes
        #: Says why a malformed message was ignored (one line; default: the log).
        self.warn = warn or (lambda why: _log.warn("widget message ignored: {why}", why=why))
        self.models: OrderedDict[str, _Model] = OrderedDict()  # oldest first
        #: Bytes held now (see the module's docstring).
        self.size = 0
        #: Models whose state was dropped to keep within ``max_bytes``.
        self.dropped = 0
        #: The Output models that capture, by the msg_id of the request they capture.
        self._capturing: dict[str, str] = {}
        self._captures_for: dict[str, str] = {}  # the other way round

    def apply(self, msg_type: str, content: dict[str, Any], buffers: list[Any]) -> None:
        """One iopub ``comm_open``, ``comm_msg`` or ``comm_close``, or a ``status``
        (``restarting``: the interpreter is replaced, its models go); others: nothing."""
        try:
            if msg_type == "status" and content.get("execution_state") == "restarting":
                self.clear()
            elif msg_type == "comm_open":
                self._open(content, buffers)
            elif msg_type == "comm_msg":
                self._update(content, buffers)
            elif msg_type == "comm_close":
                self._remove(_comm_id(content))
        except Malformed as e:
            self.warn(f"{msg_type}: {e}")

    def clear(self) -> None:
        """Every model goes (the kernel's interpreter was replaced)."""
        self.models.clear()
        self._capturing.clear()
        self._captures_for.clear()
        self.size = 0

    def _open(self, content: dict[str, Any], buffers: list[Any]) -> None:
        if content.get("target_name") != TARGET:
            return
        model_id = _comm_id(content)
        state = _state(content, buffers)
        for key in _NAME_KEYS:
            if not isinstance(state.get(key), str):
                raise Malformed(f"the state has no {key}")
        self._remove(model_id)
        size = MODEL_OVERHEAD + text_bytes(model_id) + data_bytes(state, self.max_bytes)[0]
        self.models[model_id] = _Model(state, size, bool(buffers))
        self.size += size
        self._track(model_id, state)
        self._enforce(model_id)

    def _update(self, content: dict[str, Any], buffers: list[Any]) -> None:
        model_id = _comm_id(content)
        data = content.get("data")
        method = data.get("method") if isinstance(data, dict) else None
        model = self.models.get(model_id)
        if model is None or method not in ("update", "echo_update"):
            return  # another comm, a model no longer kept, or a custom message
        partial = _state(content, buffers)
        grew = 0
        for key, value in partial.items():
            if key in model.state:
                grew -= data_bytes({key: model.state[key]}, self.max_bytes)[0]
            grew += data_bytes({key: value}, self.max_bytes)[0]
            model.state[key] = value
        model.size += grew
        model.binary = model.binary or bool(buffers)
        self.size += grew
        if "msg_id" in partial:
            self._track(model_id, model.state)
        if "outputs" in partial and model.captured is not None:
            # A frontend synced what its Output model shows: that stands.
            model.size -= model.captured.size
            self.size -= model.captured.size
            model.captured = None
        self._enforce(model_id)

    def _remove(self, model_id: str) -> None:
        model = self.models.pop(model_id, None)
        if model is not None:
            self.size -= model.size
            self._untrack(model_id)

    def _track(self, model_id: str, state: dict[str, Any]) -> None:
        """An Output model's ``msg_id`` set (it captures that request's outputs) or
        cleared."""
        if state.get("_model_name") != "OutputModel":
            return
        self._untrack(model_id)
        msg_id = state.get("msg_id")
        if isinstance(msg_id, str) and msg_id:
            self._capturing[msg_id] = model_id
            self._captures_for[model_id] = msg_id

    def _untrack(self, model_id: str) -> None:
        msg_id = self._captures_for.pop(model_id, None)
        if msg_id is not None and self._capturing.get(msg_id) == model_id:
            del self._capturing[msg_id]

    def captures(self, msg_id: str, msg_type: object) -> bool:
        """Whether an Output widget captures this output of request ``msg_id``."""
        return msg_type in CAPTURED and msg_id in self._capturing

    def capture(self, msg_id: str, msg_type: str, content: dict[str, Any]) -> None:
        """An output of request ``msg_id``, into its Output widget's ``outputs``."""
        model_id = self._capturing[msg_id]
        model = self.models[model_id]
        if model.captured is None:
            model.captured = Captured(max(1, self.max_bytes // 2))
        before = model.captured.size
        model.captured.add(msg_type, content)
        grew = model.captured.size - before
        model.size += grew
        self.size += grew
        self._enforce(model_id)

    def _enforce(self, changed: str) -> None:
        """Within ``max_bytes``: a model larger on its own goes, then the oldest."""
        if self.models[changed].size > self.max_bytes:
            self._remove(changed)
            self.dropped += 1
        while self.size > self.max_bytes:
            old_id, model = self.models.popitem(last=False)
            self._untrack(old_id)
            self.size -= model.size
            self.dropped += 1

    def to_json(self) -> dict[str, Any]:
        """The widget state document (a snapshot: later messages do not change it)."""
        state = {}
        for model_id, model in self.models.items():
            paths: list[_Path] = []
            found: list[bytes] = []
            kept = _take_buffers(model.state, [], paths, found) if model.binary else model.state
            entry: dict[str, Any] = {
                "model_name": kept["_model_name"],
                "model_module": kept["_model_module"],
                "model_module_version": kept["_model_module_version"],
                "state": kept if kept is not model.state else dict(kept),
            }
            if model.captured is not None:
                shown = entry["state"].get("outputs")
                shown = shown if isinstance(shown, list) else []
                entry["state"]["outputs"] = shown + model.captured.to_json()
            if found:
                entry["buffers"] = [
                    {"encoding": "base64", "path": path, "data": base64.b64encode(b).decode()}
                    for path, b in zip(paths, found, strict=True)
                ]
            state[model_id] = entry
        return {"state": state, "version_major": 2, "version_minor": 0}


def _comm_id(content: dict[str, Any]) -> str:
    comm_id = content.get("comm_id")
    if not isinstance(comm_id, str) or not 0 < len(comm_id) <= MAX_ID_CHARS:
        raise Malformed("no comm_id (a string of 1 to 1024 characters)")
    return comm_id


def _state(content: dict[str, Any], buffers: list[Any]) -> dict[str, Any]:
    """The message's (partial) state with its buffers put back at their paths; the
    message itself is not changed (the containers on a path are copied)."""
    data = content.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("state"), dict):
        raise Malformed("data.state is not an object")
    paths = data.get("buffer_paths") or []
    if not isinstance(paths, list) or len(paths) != len(buffers):
        raise Malformed(f"{len(buffers)} buffers for a buffer_paths that is not a list of as many")
    state = dict(data["state"])
    copied = {id(state)}
    for path, buffer in zip(paths, buffers, strict=True):
        if not isinstance(path, list) or not path:
            raise Malformed("a buffer path is not a non-empty list")
        if not isinstance(buffer, (bytes, bytearray, memoryview)):
            raise Malformed("a buffer is not binary")
        parent: dict[str, Any] | list[Any] = state
        for key in path[:-1]:
            child = _step(parent, key)
            if not isinstance(child, (dict, list)):
                raise Malformed("a buffer path goes through a value that is not a container")
            if id(child) not in copied:
                child = dict(child) if isinstance(child, dict) else list(child)
                copied.add(id(child))
                parent[key] = child
            parent = child
        _step(parent, path[-1], setting=True)
        parent[path[-1]] = bytes(buffer)
    return state


def _step(parent: dict[str, Any] | list[Any], key: object, setting: bool = False) -> Any:
    """``parent[key]`` on a buffer path (a dict's key may be new where a buffer is set)."""
    if isinstance(parent, dict) and isinstance(key, str):
        return parent.get(key) if setting else parent[key] if key in parent else None
    if isinstance(parent, list) and type(key) is int and 0 <= key < len(parent):
        return parent[key]
    raise Malformed("a buffer path does not lead into the state")


def _take_buffers(value: Any, path: _Path, paths: list[_Path], found: list[bytes]) -> Any:
    """``value`` without its bytes (a dict's key goes, a list's item becomes None, as
    ipywidgets' ``_remove_buffers`` does; the containers changed are copies), adding
    their paths to ``paths`` and the bytes to ``found``."""
    if isinstance(value, dict):
        items: list[tuple[Any, Any]] = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return value
    out: Any = None
    for key, item in items:
        if isinstance(item, bytes):
            paths.append([*path, key])
            found.append(item)
            new = None
        else:
            new = _take_buffers(item, [*path, key], paths, found)
            if new is item:
                continue
        if out is None:
            out = dict(value) if isinstance(value, dict) else list(value)
        if isinstance(out, dict) and new is None:
            del out[key]
        else:
            out[key] = new
    return value if out is None else out
