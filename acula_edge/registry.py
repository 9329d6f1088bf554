"""One small registry type for everything users choose by name (encoders, losses, ...)."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Generic, TypeVar

from acula_edge.errors import AculaError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named factories of one ``kind``: ``@reg.register("name")``, ``reg.get("name")``, ``reg.names()``."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator storing ``item`` under ``name``; another item under a taken name is an error."""

        def deco(item: T) -> T:
            if name in self._items and self._items[name] is not item:
                raise ValueError(f"another {self.kind} is already registered as {name!r}")
            self._items[name] = item
            return item

        return deco

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def get(self, name: str) -> T:
        """The item named ``name``; an unknown name is one clear error listing the choices."""
        if name not in self._items:
            raise AculaError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")
        return self._items[name]


def check_options(fn: Callable, options: dict[str, Any], what: str, error: type[AculaError] = AculaError,
                  skip: int = 0) -> None:
    """Raise ``error`` when ``options`` holds a keyword that ``fn`` (a function or class) does not declare.

    The first ``skip`` parameters (positional inputs such as a loader's ``root``) are not options.
    """
    target = fn.__init__ if inspect.isclass(fn) else fn
    params = list(inspect.signature(target).parameters.values())[skip + (1 if inspect.isclass(fn) else 0):]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    accepted = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = f"it takes: {', '.join(accepted)}" if accepted else "it takes none"
        raise error(f"{what} does not take option(s) {', '.join(unknown)}; {takes}")
