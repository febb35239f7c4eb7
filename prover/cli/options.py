"""What several commands share: turning their Lean, model and search flags into settings overrides."""

from __future__ import annotations

from typing import Any


def backend_overrides(options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The `lean`, `model` and `search` sections of `load_settings` overrides from the shared flags.

    Unset flags are None and fall through to the TOML file, `PROVER_*` variables and defaults.
    """
    return {
        "lean": {
            "backend": options["env"],
            "workers": options["workers"],
            "repl_command": options["repl_command"].split() if options["repl_command"] else None,
            "project_dir": options["project_dir"],
        },
        "model": {
            "backend": options["backend"],
            "name": options["model"],
            "base_urls": list(options["base_url"]) or None,
            "prompt_format": options["prompt_format"],
            "temperature": options["temperature"],
        },
        "search": {
            "expansions": options["expansions"],
            "samples": options["samples"],
            "timeout_s": options["timeout"],
            "tactic_timeout_s": options["tactic_timeout"],
            "priority": options["priority"],
        },
    }
