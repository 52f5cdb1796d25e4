# Installed as the package `svs_verl.configs` (see pyproject.toml), so `svs-verl configs` can print the
# directory for `--config-path` after a plain `pip install`.
