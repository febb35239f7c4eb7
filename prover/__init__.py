"""The application: model backends, miniF2F evaluation, the CLI. Wires `lean_env` and `search` together."""

__version__ = "0.1.0"
