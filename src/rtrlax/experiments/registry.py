"""The registry: every estimator, cell, network, task and environment by name.

One table of named constructors that the command line, the demo, the experiments and
the benchmarks all build through (as ``gymnax.make`` does for environments).  Looking a
name up imports nothing heavy: each entry's constructor imports its class when it is
called, so ``rtrlax --help`` and ``rtrlax list`` answer without importing JAX, and a bad
name or argument is refused before anything is built or compiled.

Kinds and what their constructors take:

============  ===========================================================================
kind          constructor
============  ===========================================================================
estimator     ``build(arg)`` with ``arg`` parsed from ``"name:arg"`` (``snap:2``) by
              the entry's :class:`Arg` (its default without ``:arg``); ``build()``
              for an estimator registered without an ``Arg``
cell          ``build(input_size, hidden_size, *, key, density, input_density)``;
              ``density=None`` means the cell's own default
network       ``build(cell_factory, input_size, output_size, hidden_size, *, key,
              layers)`` where ``cell_factory(input_size, hidden_size, key)`` makes one
              recurrent core (a readout network, a deep stack, ...)
task          ``build(**options)`` (options from the experiment's config)
============  ===========================================================================

Other modules may add kinds of their own (environments, agents) with the same calls.

Which pairs work: a cell entry carries *tags* (``"gated"``, ``"vanilla"``,
``"columnar"``, ``"lru"``, ...); an estimator entry names the tag a cell must carry
(``requires``; ``None`` for every cell).  :func:`check_pair` refuses a pair with a
message naming the cells that work, before anything is built.

Adding your own, from Python::

    import rtrlax as rx

    rx.registry.register(
        "estimator", "mysnap", lambda n: rx.SnAp(n),
        description="SnAp with my defaults", arg=rx.registry.Arg("n", int, 1, low=1),
        requires="gated",
    )
    rx.registry.make_estimator("mysnap:2")            # -> rx.SnAp(2)
    from rtrlax.cli import main
    main(["run", "copy", "--estimator", "mysnap", "--steps", "100"])

From the command line, ``--plugin MODULE`` (or ``plugins = [...]`` in a config file)
imports ``MODULE`` first, so the entries it registers can be named in the same run.

Library modules that register entries of their own list themselves in
:data:`PLUGINS`; they are imported the first time the registry is read.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable

#: modules imported on first use of the registry; each registers its own entries
PLUGINS: tuple[str, ...] = ("rtrlax.experiments.builtin", "rtrlax.experiments.sequence_tasks")


@dataclass(frozen=True)
class Arg:
    """The argument after the colon in ``"name:arg"`` (``snap:2``, ``tbptt:16``)."""

    name: str  #: what it is, for messages ("n", "T", "capacity")
    type: Callable[[str], Any]  #: int, float, or a parser raising ValueError
    default: Any = None  #: used when the spec has no ``:arg`` (None: the class default)
    low: float | None = None  #: smallest allowed value (inclusive)
    high: float | None = None  #: largest allowed value (inclusive)
    help: str = ""

    def parse(self, owner: str, text: str | None) -> Any:
        """The value of ``text`` (or the default), checked; a ValueError says why not."""
        if text is None or text == "":
            return self.default
        try:
            value = self.type(text)
        except ValueError:
            kind = "an integer" if self.type is int else "a number"
            example = self.default if self.default is not None else 1
            raise ValueError(
                f"{owner} takes {kind} {self.name} after the colon, as in "
                f"'{owner}:{example}'; got '{text}'."
            ) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{owner}: {self.name} must be finite, got '{text}'.")
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            lo = "-inf" if self.low is None else self.low
            hi = "inf" if self.high is None else self.high
            raise ValueError(f"{owner}: {self.name} must lie in [{lo}, {hi}], got {value}.")
        return value


@dataclass(frozen=True)
class Entry:
    """One named constructor."""

    kind: str
    name: str
    build: Callable[..., Any]
    description: str
    arg: Arg | None = None  #: estimators: the ``:arg`` they take
    requires: str | None = None  #: estimators: the tag a cell needs (None: every cell)
    tags: frozenset[str] = field(default_factory=frozenset)  #: cells: what they are
    online: bool = True  #: estimators: usable by an online learner (BPTT is not)
    aliases: tuple[str, ...] = ()

    @property
    def usage(self) -> str:
        """``name`` or ``name[:n]`` as written on the command line."""
        return self.name if self.arg is None else f"{self.name}[:{self.arg.name}]"


def _key(name: str) -> str:
    """Names compare without case, dashes or underscores (``SnAp-1`` = ``snap1``)."""
    return name.strip().lower().replace("-", "").replace("_", "")


class Registry:
    """Named constructors by kind.  Most users need only the module-level functions
    that act on the library's registry, :data:`REGISTRY`."""

    def __init__(self, plugins: tuple[str, ...] = ()):
        self._entries: dict[str, dict[str, Entry]] = {}
        self._plugins = list(plugins)

    # --- writing ---------------------------------------------------------------------

    def register(self, kind: str, name: str, build: Callable[..., Any] | None = None, *,
                 description: str, **options) -> Any:
        """Register ``build`` as ``name`` of ``kind`` (``options``: the :class:`Entry`
        fields ``arg``, ``requires``, ``tags``, ``online``, ``aliases``).  Without
        ``build`` it returns a decorator.  A name already taken is replaced (so a user
        can override a library entry on purpose)."""
        if build is None:
            return lambda fn: (self.register(kind, name, fn, description=description, **options), fn)[1]
        if not name or ":" in name:
            raise ValueError(f"a registry name must be non-empty and without ':', got {name!r}.")
        if "tags" in options:
            options["tags"] = frozenset(options["tags"])
        entry = Entry(kind, name, build, description, **options)
        table = self._entries.setdefault(kind, {})
        for n in (name, *entry.aliases):
            table[_key(n)] = entry
        return entry

    # --- reading ---------------------------------------------------------------------

    def _load(self) -> None:
        while self._plugins:
            importlib.import_module(self._plugins.pop(0))

    def kinds(self) -> list[str]:
        self._load()
        return list(self._entries)

    def entries(self, kind: str) -> list[Entry]:
        """The entries of ``kind`` in registration order, each once."""
        self._load()
        seen: dict[int, Entry] = {}
        for e in self._entries.get(kind, {}).values():
            seen.setdefault(id(e), e)
        return list(seen.values())

    def names(self, kind: str) -> list[str]:
        return [e.name for e in self.entries(kind)]

    def get(self, kind: str, name: str) -> Entry:
        """The entry called ``name`` (no ``:arg``); a ValueError lists the choices."""
        self._load()
        entry = self._entries.get(kind, {}).get(_key(name))
        if entry is None:
            choices = ", ".join(e.usage for e in self.entries(kind)) or "(none registered)"
            raise ValueError(f"unknown {kind} '{name}'; choose one of: {choices}.")
        return entry

    def parse(self, kind: str, spec: str) -> tuple[Entry, Any]:
        """``"snap:2"`` -> (the ``snap`` entry, 2): the name looked up and the argument
        parsed and range-checked, without building anything."""
        name, colon, text = str(spec).partition(":")
        entry = self.get(kind, name)
        if entry.arg is None:
            if colon:
                raise ValueError(f"{kind} '{entry.name}' takes no argument; write '{entry.name}'.")
            return entry, None
        return entry, entry.arg.parse(entry.name, text)

    def build(self, kind: str, spec: str, *args, **kwargs) -> Any:
        """Parse ``spec`` and call the constructor (estimators get the parsed argument
        first; every other kind gets ``args``/``kwargs`` as given)."""
        entry, value = self.parse(kind, spec)
        if entry.arg is not None:
            return entry.build(value, *args, **kwargs)
        return entry.build(*args, **kwargs)

    def supported_cells(self, estimator: str) -> list[str]:
        """The cells an estimator works on, by name."""
        entry, _ = self.parse("estimator", estimator)
        return [c.name for c in self.entries("cell") if entry.requires in (None, *c.tags)]

    def check_pair(self, estimator: str, cell: str) -> None:
        """A ValueError, naming the pairs that work, unless ``estimator`` runs online on
        models built from ``cell``."""
        est, _ = self.parse("estimator", estimator)
        core = self.get("cell", cell)
        if not est.online:
            raise ValueError(
                f"estimator '{est.name}' is not an online estimator (it needs the whole "
                "sequence): use it with rx.accumulate_grads, or pick an online one."
            )
        if est.requires is not None and est.requires not in core.tags:
            works = ", ".join(self.supported_cells(est.name))
            raise ValueError(
                f"estimator '{est.name}' does not support cell '{core.name}': it needs a "
                f"{est.requires} cell ({works})."
            )


#: the library's registry (what the command line and experiments read)
REGISTRY = Registry(PLUGINS)

register = REGISTRY.register
get = REGISTRY.get
names = REGISTRY.names
entries = REGISTRY.entries
kinds = REGISTRY.kinds
parse = REGISTRY.parse
check_pair = REGISTRY.check_pair
supported_cells = REGISTRY.supported_cells


def make_estimator(spec: str):
    """``"snap:2"`` -> ``rx.SnAp(2)``; a ValueError names the choices."""
    return REGISTRY.build("estimator", spec)


def make_cell(name: str, input_size: int, hidden_size: int, *, key, density: float | None = None,
              input_density: float | None = None):
    """A cell by name, e.g. ``make_cell("gru", 3, 16, key=k)``."""
    return REGISTRY.build("cell", name, input_size, hidden_size, key=key, density=density,
                          input_density=input_density)


def make_network(name: str, cell: str, input_size: int, output_size: int, hidden_size: int, *,
                 key, layers: int = 1, density: float | None = None,
                 input_density: float | None = None):
    """A network by name around cells by name: ``make_network("readout", "gru", 3, 2, 16, key=k)``."""
    entry = REGISTRY.get("cell", cell)

    def cell_factory(d_in: int, d_hidden: int, k):
        return entry.build(d_in, d_hidden, key=k, density=density, input_density=input_density)

    return REGISTRY.build("network", name, cell_factory, input_size, output_size, hidden_size,
                          key=key, layers=layers)


def make_task(name: str, **options):
    """A task by name with its options (``make_task("copy", bits=2)``)."""
    return REGISTRY.build("task", name, **options)
