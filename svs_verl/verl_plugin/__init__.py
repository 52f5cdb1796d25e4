"""The verl-facing half of svs-verl: one module per role, registered through the ``verl.plugins`` entry point.

verl is imported here, before any role module: ``import verl`` loads the entry point (``register``), which
imports every role module. Importing a role module first (``from svs_verl.verl_plugin.sampler import ...``)
would otherwise start ``import verl`` from inside that half-built module, and the registration would fail.
"""

import verl  # noqa: F401  (must run before the role modules; see above)
