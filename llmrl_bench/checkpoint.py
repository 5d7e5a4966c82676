"""Checkpoint a run mid-training, resume it, and stop it cleanly on pre-emption signals.

``<results_dir>/runs/<run_id>/checkpoint.pt`` holds::

    {"format": 2, "run_id": ..., "global_step": N,
     "agent": agent.state_dict(),      # networks, optimizer, replay buffer, agent RNGs, loop state, training envs
     "runner": RunnerHooks.state_dict(),  # curve and episodes so far, evaluation cursor
     "rng": {"python": ..., "numpy": ..., "torch": ...}}  # the global RNG states

The file is data, never code: :func:`encode_state` turns the state into plain dicts,
lists, tuples, numbers, strings and tensors (numpy arrays as their bytes, numpy RNGs as
their state dicts, env objects as ``{class, attributes}``), and :func:`load_checkpoint`
reads it with ``torch.load(weights_only=True)``. Decoding only re-creates objects of the
env classes of ``ALLOWED_CLASS_MODULES`` (``cls.__new__`` plus their attributes; no
``__init__``, ``__setstate__`` or ``__reduce__`` runs) and references functions of
``ALLOWED_FUNCTION_MODULES``; anything else is refused. A state holding other objects
(e.g. a language model inside an ``llm_embed`` env) is not checkpointed: a warning is
logged and a stopped run restarts from step 0.

It is written atomically every ``checkpoint.every_steps`` env steps and when a
pre-emption signal arrives (SIGTERM, SIGUSR1, SIGUSR2), at the agent's next
``hooks.checkpoint_point``, and deleted once the run's ``result.json`` is written.
Only agents with ``resumable = True`` (dqn, ppo, llm_pg) checkpoint; the others keep the
default signal behaviour and restart from step 0.

Signals follow submitit's protocol: the handler only notes the signal; once the
checkpoint is written, the handler that was installed before ours (submitit's, which
requeues the SLURM job and exits) is called, and otherwise the process exits with
status ``128 + signum`` so that the scheduler or the user re-runs the same command.
"""

from __future__ import annotations

import enum
import importlib
import logging
import random
import signal
import threading
import types
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from llmrl_bench.results import atomic_write

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT_VERSION = 2
#: Classes whose instances a checkpoint may hold (the env stacks of resumable agents).
ALLOWED_CLASS_MODULES = (
    "gymnasium.envs.", "gymnasium.spaces.", "gymnasium.vector.", "gymnasium.wrappers.common",
    "gymnasium.wrappers.vector.vectorize_observation", "gymnasium.wrappers.vector.common",
    "minigrid.core.", "minigrid.envs.", "llmrl_bench.envs.", "llmrl_bench.representations.vector", "llmrl_bench.representations.text",
    "llmrl_bench.run_envs",
)
#: Functions a checkpoint may reference by name (MiniGrid's mission functions, the text descriptions of repr=text).
ALLOWED_FUNCTION_MODULES = ("minigrid.envs.", "llmrl_bench.envs.", "llmrl_bench.representations.text")
NUMPY_KINDS = "biufcUS"
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
TAG = "__codec__"
PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)


class Preempted(SystemExit):
    """A run stopped by a pre-emption signal after writing its checkpoint.

    A ``SystemExit`` so that no ``except Exception`` (the runner's failure record,
    Hydra's job wrapper) turns it into a failed run: the process exits ``128 + signum``.
    """


def rng_state() -> dict[str, Any]:
    """The global RNG states of python, numpy and torch."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


class UnsafeCheckpoint(ValueError):
    """A state that cannot be stored as data, or a checkpoint that asks for code outside the allowlists."""


def _allowed(module: str, allowed: tuple[str, ...]) -> bool:
    return any(module.startswith(entry) if entry.endswith(".") else module == entry or module.startswith(entry + ".") for entry in allowed)


def _name(value: Any) -> str:
    return f"{value.__module__}:{value.__qualname__}"


def _resolve(name: str, allowed: tuple[str, ...]) -> Any:
    """The class or function ``module:qualname``, only from an allowed module."""
    module, _, qualname = str(name).partition(":")
    if not _allowed(module, allowed) or not qualname or "<" in qualname:
        raise UnsafeCheckpoint(f"checkpoint names {name!r}, outside the allowed modules {', '.join(allowed)}")
    value: Any = importlib.import_module(module)
    for part in qualname.split("."):
        value = getattr(value, part)
    return value


def _array(value: Any) -> dict[str, Any]:
    array = np.array(value, order="C")
    if array.dtype.kind not in NUMPY_KINDS:
        raise UnsafeCheckpoint(f"a numpy array of dtype {array.dtype} cannot be stored as data")
    data = torch.frombuffer(bytearray(array.tobytes()), dtype=torch.uint8) if array.nbytes else torch.zeros(0, dtype=torch.uint8)
    return {"dtype": array.dtype.str, "shape": list(array.shape), "data": data}


def _from_array(item: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(str(item["dtype"]))
    if dtype.kind not in NUMPY_KINDS:
        raise UnsafeCheckpoint(f"checkpoint holds a numpy array of dtype {dtype}")
    return np.frombuffer(item["data"].numpy().tobytes(), dtype=dtype).reshape(item["shape"]).copy()


class _Encoder:
    """State -> plain data (see the module docstring); shared and cyclic references stay shared."""

    def __init__(self) -> None:
        self.memo: dict[int, int] = {}
        self.alive: list[Any] = []  # ids stay unique while the encoder holds the objects

    def encode(self, value: Any, where: str) -> Any:
        if value is None or type(value) in (bool, int, float, str) or isinstance(value, torch.Tensor):
            return value
        if id(value) in self.memo:
            return {TAG: "ref", "id": self.memo[id(value)]}
        if isinstance(value, enum.Enum):
            return {TAG: "enum", "class": _name(type(value)), "name": value.name}
        if isinstance(value, np.generic):
            return {TAG: "npscalar", **_array(np.asarray(value))}
        if isinstance(value, type) and _allowed(value.__module__, ALLOWED_CLASS_MODULES):
            return {TAG: "class", "name": _name(value)}
        if type(value) is bytes:
            return {TAG: "bytes", **_array(np.frombuffer(value, np.uint8))}
        if isinstance(value, np.dtype):
            return {TAG: "dtype", "dtype": value.str}
        if isinstance(value, types.FunctionType):
            if "<" in value.__qualname__:  # a lambda (a vector env's env_fns): only its constructor used it
                return {TAG: "function", "name": None}
            return {TAG: "function", "name": _name(value)}
        self.memo[id(value)] = ident = len(self.memo)
        self.alive.append(value)
        return {TAG: None, "id": ident, **self._container(value, where)}

    def _items(self, values: Any, where: str) -> list[Any]:
        return [self.encode(item, f"{where}[{i}]") for i, item in enumerate(values)]

    def _container(self, value: Any, where: str) -> dict[str, Any]:
        if isinstance(value, dict):
            kind = "odict" if isinstance(value, OrderedDict) else "dict"
            return {TAG: kind, "items": [[self.encode(k, where), self.encode(v, f"{where}.{k}")] for k, v in value.items()]}
        for kind, types_ in (("list", list), ("tuple", tuple), ("set", set), ("frozenset", frozenset)):
            if type(value) is types_:
                return {TAG: kind, "items": self._items(value, where)}
        if isinstance(value, deque):
            return {TAG: "deque", "items": self._items(value, where), "maxlen": value.maxlen}
        if isinstance(value, np.ndarray):
            return {TAG: "ndarray", **_array(value)}
        if isinstance(value, np.random.Generator):
            return {TAG: "generator", "state": self.encode(value.bit_generator.state, where)}
        if isinstance(value, types.MethodType):
            return {TAG: "method", "self": self.encode(value.__self__, where), "name": value.__func__.__name__}
        cls = type(value)
        if isinstance(value, type) or not _allowed(cls.__module__, ALLOWED_CLASS_MODULES) or not hasattr(value, "__dict__"):
            raise UnsafeCheckpoint(f"{where}: a {cls.__module__}.{cls.__qualname__} cannot be stored as data")
        return {TAG: "object", "class": _name(cls), "attrs": self.encode(dict(vars(value)), where)}


def encode_state(state: Any) -> Any:
    """``state`` as plain data that ``torch.load(weights_only=True)`` reads; raises :class:`UnsafeCheckpoint`."""
    return _Encoder().encode(state, "state")


def _unavailable(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("this function was a lambda of a checkpointed object; it cannot be restored")


class _Decoder:
    """Plain data -> state; builds only allowlisted classes, with ``object.__new__`` and their attributes."""

    def __init__(self) -> None:
        self.memo: dict[int, Any] = {}

    def decode(self, value: Any) -> Any:
        if not isinstance(value, dict):
            if isinstance(value, (list, tuple)):
                raise UnsafeCheckpoint("checkpoint holds an untagged container")
            return value
        kind = value.get(TAG)
        if kind == "ref":
            return self.memo[value["id"]]
        if "id" in value:
            return self._shared(kind, value)
        if kind == "enum":
            cls = _resolve(value["class"], ALLOWED_CLASS_MODULES)
            if not (isinstance(cls, type) and issubclass(cls, enum.Enum)):
                raise UnsafeCheckpoint(f"checkpoint names {value['class']!r} as an enum")
            return cls[value["name"]]
        if kind == "npscalar":
            return _from_array(value)[()]
        if kind == "bytes":
            return _from_array(value).tobytes()
        if kind == "class":
            cls = _resolve(value["name"], ALLOWED_CLASS_MODULES)
            if not isinstance(cls, type):
                raise UnsafeCheckpoint(f"checkpoint names {value['name']!r} as a class")
            return cls
        if kind == "dtype":
            return np.dtype(str(value["dtype"]))
        if kind == "function":
            function = _unavailable if value["name"] is None else _resolve(value["name"], ALLOWED_FUNCTION_MODULES)
            if not isinstance(function, types.FunctionType):
                raise UnsafeCheckpoint(f"checkpoint names {value['name']!r} as a function")
            return function
        raise UnsafeCheckpoint(f"checkpoint holds an unknown entry {str(kind)[:40]!r}")

    def _shared(self, kind: str, value: dict[str, Any]) -> Any:
        """An entry other entries may reference: registered before its content, so cycles resolve."""
        ident, items = value["id"], value.get("items", [])
        if kind in ("dict", "odict", "list", "set", "deque"):
            made: Any = deque(maxlen=value["maxlen"]) if kind == "deque" else {"dict": dict, "odict": OrderedDict, "list": list, "set": set}[kind]()
            self.memo[ident] = made
            if kind in ("dict", "odict"):
                made.update((self.decode(k), self.decode(v)) for k, v in items)
            elif kind == "set":
                made.update(self.decode(item) for item in items)
            else:
                made.extend(self.decode(item) for item in items)
            return made
        if kind == "object":
            cls = _resolve(value["class"], ALLOWED_CLASS_MODULES)
            if not isinstance(cls, type) or issubclass(cls, type):
                raise UnsafeCheckpoint(f"checkpoint names {value['class']!r} as a class")
            made = self.memo[ident] = object.__new__(cls)
            attrs = self.decode(value["attrs"])
            if not isinstance(attrs, dict) or not all(isinstance(key, str) for key in attrs):
                raise UnsafeCheckpoint(f"checkpoint holds malformed attributes of {value['class']!r}")
            vars(made).update(attrs)
            return made
        if kind == "method":
            name = str(value["name"])
            if not name.isidentifier() or name.startswith("__"):
                raise UnsafeCheckpoint(f"checkpoint names {name[:40]!r} as a method")
            made = self.memo[ident] = getattr(self.decode(value["self"]), name)
            if not isinstance(made, types.MethodType):
                raise UnsafeCheckpoint(f"checkpoint names {value['name']!r} as a method")
            return made
        made = {
            "tuple": lambda: tuple(self.decode(item) for item in items),
            "frozenset": lambda: frozenset(self.decode(item) for item in items),
            "ndarray": lambda: _from_array(value),
            "generator": lambda: _generator(self.decode(value["state"])),
        }.get(kind, lambda: None)()
        if made is None:
            raise UnsafeCheckpoint(f"checkpoint holds an unknown entry {str(kind)[:40]!r}")
        self.memo[ident] = made
        return made


def _generator(state: dict[str, Any]) -> np.random.Generator:
    name = state["bit_generator"]
    if name not in BIT_GENERATORS:
        raise UnsafeCheckpoint(f"checkpoint holds a numpy bit generator {str(name)[:40]!r}, not one of {', '.join(BIT_GENERATORS)}")
    generator = np.random.Generator(getattr(np.random, name)())
    generator.bit_generator.state = state
    return generator


def decode_state(data: Any) -> Any:
    """The state :func:`encode_state` stored; raises :class:`UnsafeCheckpoint` on anything outside the allowlists."""
    return _Decoder().decode(data)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a reader sees the previous checkpoint or this one.

    Raises :class:`UnsafeCheckpoint` (nothing written) when the state holds something that is not data.
    """
    encoded = {"format": FORMAT_VERSION, "state": encode_state(state)}
    atomic_write(path, lambda handle: torch.save(encoded, handle))


def load_checkpoint(path: Path, run_id: str) -> dict[str, Any] | None:
    """The checkpoint of ``run_id`` at ``path``, or ``None`` (absent, unreadable, unsafe or another run's)."""
    if not path.exists():
        return None
    try:
        saved = torch.load(path, weights_only=True)
        state = decode_state(saved["state"]) if isinstance(saved, dict) and saved.get("format") == FORMAT_VERSION else None
    except Exception as error:  # noqa: BLE001 - a bad checkpoint costs a restart, never the run
        log.warning("ignoring unreadable checkpoint %s: %s: %s", path, type(error).__name__, error)
        return None
    if not isinstance(state, dict) or state.get("run_id") != run_id:
        log.warning("ignoring checkpoint %s: not a format-%d checkpoint of run %s", path, FORMAT_VERSION, run_id)
        return None
    return state


class PreemptionSignals:
    """Handlers for SIGTERM/SIGUSR1/SIGUSR2 that only note the signal; the run acts at a safe point."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> bool:
        """Install the handlers; ``False`` off the main thread, where Python allows none."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for signum in PREEMPTION_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._note)
        return True

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    def _note(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def stop(self) -> None:
        """Act on the noted signal, once the checkpoint is safe: hand it on, then exit."""
        signum = self.signum
        assert signum is not None
        previous = self._previous.get(signum)
        self.restore()
        if callable(previous):
            previous(signum, None)  # submitit: USR2 checkpoints the job, requeues it and exits; TERM is only logged
        raise Preempted(128 + signum)


class Checkpointer:
    """Decides at each checkpoint point whether to save, and stops the run after a signal."""

    def __init__(self, path: Path, every_steps: int, signals: PreemptionSignals, state: Callable[[int], dict[str, Any]], title: str, start_step: int = 0):
        self.path = path
        self.every_steps = every_steps
        self.signals = signals
        self.state = state
        self.title = title
        self.last_saved = start_step
        self.unsafe_logged = False

    def point(self, global_step: int) -> None:
        """A safe point: save when ``every_steps`` have passed or a signal is pending."""
        if self.signals.signum is None and global_step - self.last_saved < self.every_steps:
            return
        try:
            save_checkpoint(self.path, self.state(global_step))
        except UnsafeCheckpoint as error:  # e.g. a language model in the env stack: no resume, the run goes on
            if not self.unsafe_logged:
                log.warning("no checkpoint for %s: %s; if stopped, it restarts from step 0", self.title, error)
            self.unsafe_logged = True
        self.last_saved = global_step
        if self.signals.requested:
            name = signal.Signals(self.signals.signum).name
            log.info("checkpoint %s at step %d (%s): stopping; re-run the same command to resume", self.title, global_step, name)
            self.signals.stop()
        log.debug("checkpoint %s at step %d -> %s", self.title, global_step, self.path)
