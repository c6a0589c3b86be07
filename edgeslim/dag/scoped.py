"""The params a step may read, and nothing else.

A step declares the params keys it reads (``fuse``, ``baseline.imgsz``, ``prune.finetune``); it
is handed a view of :class:`~edgeslim.config.Params` in which every other key raises. So the
declaration cannot drift from the code: dvc.yaml's ``params:`` lists come from the declarations,
and a step that starts reading a new knob fails the first test that runs it until it declares it.
"""

from __future__ import annotations

from typing import Any, cast

from edgeslim.config import Params


class UndeclaredParam(AttributeError):
    """A step read a params key it does not declare: a bug in the step's declaration, not user input."""


class _Scoped:
    """Attribute access into a params model, limited to ``keys`` (dotted, from the root)."""

    __slots__ = ("_keys", "_model", "_path", "_step")

    def __init__(self, model: Any, keys: frozenset[str], path: str, step: str) -> None:
        self._model, self._keys, self._path, self._step = model, keys, path, step

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # copy/pickle/introspection probes, never a params key
            raise AttributeError(name)
        key = f"{self._path}{name}"
        if key in self._keys:
            return getattr(self._model, name)
        if any(k.startswith(f"{key}.") for k in self._keys):
            return _Scoped(getattr(self._model, name), self._keys, f"{key}.", self._step)
        raise UndeclaredParam(f"step {self._step!r} reads params key {key!r} but does not declare it (edgeslim/dag/registry.py)")

    def __repr__(self) -> str:
        return f"<params of step {self._step}: {sorted(self._keys)}>"


def whole(p: Params) -> Params:
    """The whole params behind a step's scoped view, as bound for that step (the search's choice
    included): for a runner that ships them to another process, never for a step body to read."""
    return cast(Params, p._model) if isinstance(p, _Scoped) else p


def scope(p: Params, keys: tuple[str, ...], step: str) -> Params:
    """``p`` as the step ``step`` may see it: only ``keys`` (and everything below them)."""
    for key in keys:
        node: Any = p
        for part in key.split("."):
            if not hasattr(node, part):
                raise UndeclaredParam(f"step {step!r} declares params key {key!r}, which params.yaml does not have")
            node = getattr(node, part)
    return cast(Params, _Scoped(p, frozenset(keys), "", step))
