"""The verl-facing half of svs-verl: one module per role, registered through the ``verl.plugins`` entry point."""
