"""A transcript's whole state as JSON-ready data, and back (pure).

The journal's snapshot (:mod:`.journal`) keeps the transcript as it is in memory, so
that a transcript rebuilt from it is the same object graph: its JSON, its byte count,
its stream outputs' hidden lines and unfinished line, its displays and its widgets.

Only the classes the transcript is made of are rebuilt (:data:`CLASSES`), each by
``__new__`` and its attributes, never by a name read from the file; an object met
twice (an output in its cell and in the displays' index) is written once and then
referred to by its number, in the order met.  Callables (the widget store's ``warn``)
are not written: the transcript restored into keeps its own.
"""

from __future__ import annotations

from base64 import b64decode, b64encode
from collections import OrderedDict, deque
from typing import Any

from .capture import Captured, _Stream
from .outputs import Display, Displays, ErrorOutput, RichOutput
from .streamtext import StreamOutput
from .transcript import Cell, Transcript
from .widgets import WidgetStore, _Model

__all__ = ["StateError", "dump_transcript", "load_transcript"]

CLASSES: dict[str, type] = {
    c.__name__: c
    for c in (
        Captured,
        _Stream,
        Display,
        Displays,
        ErrorOutput,
        RichOutput,
        StreamOutput,
        Cell,
        WidgetStore,
        _Model,
    )
}


#: The transcript's limits: those of the service that restores it, not of the last one.
LIMITS = frozenset(
    ("max_cells", "max_lines", "max_outputs", "max_bytes", "max_output_bytes", "max_line_chars")
)


class StateError(ValueError):
    """A snapshot that does not describe a transcript (the reason, never the data)."""


def _attrs(obj: object) -> dict[str, Any]:
    if hasattr(obj, "__dict__"):
        return {k: v for k, v in vars(obj).items() if not callable(v)}
    return {name: getattr(obj, name) for name in getattr(type(obj), "__slots__", ())}


class _Dumper:
    def __init__(self) -> None:
        self.seen: dict[int, int] = {}
        self.keep: list[object] = []  # alive while dumping: ids stay unique

    def ref(self, obj: object) -> int | None:
        number = self.seen.get(id(obj))
        if number is None:
            self.seen[id(obj)] = len(self.seen)
            self.keep.append(obj)
        return number

    def dump(self, value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            return {"$b": b64encode(bytes(value)).decode("ascii")}
        number = self.ref(value)
        if number is not None:
            return {"$r": number}
        if isinstance(value, list):
            return [self.dump(v) for v in value]
        if isinstance(value, tuple):
            return {"$t": [self.dump(v) for v in value]}
        if isinstance(value, OrderedDict):
            return {"$o": [[self.dump(k), self.dump(v)] for k, v in value.items()]}
        if isinstance(value, dict):
            return {"$d": [[self.dump(k), self.dump(v)] for k, v in value.items()]}
        if isinstance(value, deque):
            return {"$q": [self.dump(v) for v in value], "m": value.maxlen}
        if isinstance(value, (set, frozenset)):
            return {"$s": [self.dump(v) for v in value]}
        name = type(value).__name__
        if CLASSES.get(name) is not type(value):
            raise StateError(f"cannot keep a {name}")
        return {"$c": name, "a": {k: self.dump(v) for k, v in _attrs(value).items()}}


class _Loader:
    def __init__(self) -> None:
        self.objects: list[Any] = []

    def load(self, data: Any) -> Any:
        if data is None or isinstance(data, (bool, int, float, str)):
            return data
        if isinstance(data, list):
            out: list[Any] = []
            self.objects.append(out)
            out.extend(self.load(v) for v in data)
            return out
        if not isinstance(data, dict) or len(data) > 2:
            raise StateError("not a snapshot value")
        if "$b" in data:
            return b64decode(str(data["$b"]), validate=True)
        if "$r" in data:
            number = data["$r"]
            if not isinstance(number, int) or not 0 <= number < len(self.objects):
                raise StateError("a reference to nothing")
            return self.objects[number]
        return self._container(data)

    def _container(self, data: dict[str, Any]) -> Any:
        slot = len(self.objects)
        if "$t" in data:  # immutable: its number is taken first, its value set after
            self.objects.append(None)
            self.objects[slot] = value = tuple(self.load(v) for v in _list(data["$t"]))
            return value
        if "$o" in data or "$d" in data:
            mapping: dict[Any, Any] = OrderedDict() if "$o" in data else {}
            self.objects.append(mapping)
            for pair in _list(data.get("$o", data.get("$d"))):
                key, value = _list(pair)
                mapping[self.load(key)] = self.load(value)
            return mapping
        if "$q" in data:
            maxlen = data.get("m")
            queue: deque[Any] = deque(maxlen=maxlen if isinstance(maxlen, int) else None)
            self.objects.append(queue)
            queue.extend(self.load(v) for v in _list(data["$q"]))
            return queue
        if "$s" in data:
            items: set[Any] = set()
            self.objects.append(items)
            items.update(self.load(v) for v in _list(data["$s"]))
            return items
        cls = CLASSES.get(str(data.get("$c")))
        if cls is None or not isinstance(data.get("a"), dict):
            raise StateError("an object of no known class")
        obj: object = object.__new__(cls)
        self.objects.append(obj)
        self.fill(obj, data["a"])
        return obj

    def fill(self, obj: object, attrs: dict[str, Any]) -> None:
        for name, value in attrs.items():
            if not isinstance(name, str) or not name.isidentifier() or name.startswith("__"):
                raise StateError("a bad attribute name")
            setattr(obj, name, self.load(value))


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise StateError("a list expected")
    return value


def dump_transcript(transcript: Transcript) -> dict[str, Any]:
    """The transcript's state (its widget store's too, callables left out)."""
    dumper = _Dumper()
    attrs = _attrs(transcript)
    widgets = attrs.pop("widgets")
    return {"t": dumper.dump(attrs), "w": dumper.dump(_attrs(widgets))}


def load_transcript(transcript: Transcript, state: Any) -> None:
    """Make ``transcript`` what :func:`dump_transcript` saw; its callables and limits
    stay, and it is brought within its bounds.  Raises :class:`StateError` (or another
    ValueError, TypeError, KeyError) if ``state`` is not such a dump; ``transcript`` is
    then left as it was."""
    if not isinstance(state, dict):
        raise StateError("not a snapshot")
    loader = _Loader()
    attrs, widget_attrs = loader.load(state.get("t")), loader.load(state.get("w"))
    if not isinstance(attrs, dict) or not isinstance(widget_attrs, dict):
        raise StateError("not a transcript's state")
    if not isinstance(attrs.get("cells"), OrderedDict) or "models" not in widget_attrs:
        raise StateError("not a transcript's state")
    widgets = transcript.widgets
    for name, value in attrs.items():
        if name not in LIMITS:
            setattr(transcript, name, value)
    for name, value in widget_attrs.items():
        if name != "max_bytes":
            setattr(widgets, name, value)
    transcript._enforce()  # this service's bounds, if smaller than the last one's
