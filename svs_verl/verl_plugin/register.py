"""Entry point of the ``verl.plugins`` group: verl imports this module on every ``import verl``.

verl swallows exceptions raised while loading a plugin (it logs them at DEBUG), so this module records
what it registered and any failure in ``REGISTERED`` / ``ERRORS``; ``svs-verl doctor`` reports both.
"""

from __future__ import annotations

REGISTERED: dict[str, str] = {}
ERRORS: dict[str, str] = {}
