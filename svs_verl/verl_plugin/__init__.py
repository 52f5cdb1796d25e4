"""The verl-facing half of svs-verl: one module per role, registered through the ``verl.plugins`` entry point.

``register`` (the entry point) is what ``import verl`` loads; it registers the CPU platform and arranges for
the trainers and the reward manager to register when verl's own trainer / reward packages load, so importing
any role module first (``from svs_verl.verl_plugin.sampler import ...``) registers everything too. Nothing
is imported here: ``checks`` stays importable without verl.
"""
