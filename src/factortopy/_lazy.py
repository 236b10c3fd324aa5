"""Lazy public names for package roots: heavy modules load on first attribute access."""
from __future__ import annotations

import importlib


def lazy_attributes(package: str, names: dict, namespace: dict):
    """(__getattr__, __dir__) for a package whose public ``names`` map to defining modules.

    A resolved name is stored in ``namespace`` (the package's globals) so the lookup runs once.
    """

    def __getattr__(name: str):
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        imported = importlib.import_module(module)
        # an entry naming the package's own submodule (``"viz": "factortopy.viz"``) is that module
        value = imported if module == f"{package}.{name}" else getattr(imported, name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(names)

    return __getattr__, __dir__
