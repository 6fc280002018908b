"""Package attributes that import their module on first use (PEP 562).

Every pipeline stage is its own process, and importing torch, torchvision or the model libraries costs seconds.
A package whose ``__init__`` imported all its modules would make a stage that reads one index pay for the whole
package, so the packages name their exports here and each one is imported when it is first looked up.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``exports`` maps a name to the submodule defining it.

        __getattr__, __dir__ = lazy_exports(__name__, {"open_store": "store", ...})

    ``from package import name`` and ``package.name`` both work; the value is cached in the package's namespace,
    so each is looked up once. Names not in ``exports`` raise AttributeError, as for any module, which also lets
    ``from package import submodule`` fall back to importing the submodule. An export may not share its
    submodule's name: importing the submodule binds the module to that name in the package, shadowing the export.
    """
    clash = sorted(name for name, module in exports.items() if name == module)
    if clash:
        raise ValueError(f"{package}: exports {clash} share their submodule's name; rename the submodule")
    namespace = importlib.import_module(package).__dict__
    namespace["__lazy_exports__"] = dict(exports)  # which module a name runs: embedrobust.generate follows it (dvc.yaml)

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
