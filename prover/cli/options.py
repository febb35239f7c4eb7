"""What several commands share: their Lean, model and search flags, and turning them into settings overrides.

Each group of flags is declared once here (`lean_options`, `model_options`, `search_options`,
`settings_options`) and stacked on the commands that take it, so `prove` and `eval` cannot drift
apart. `settings_overrides` maps the flags onto the nested settings; `--set section.field=value`
reaches every other field of the settings model.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from prover.config import deep_merge

F = TypeVar("F", bound=Callable[..., Any])


def stack_options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """One decorator applying `decorators` in the order written (the first becomes the first flag in --help)."""

    def apply(function: F) -> F:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


def lean_option_group(workers_flag: str = "--workers") -> Callable[[F], F]:
    """The Lean flags; `workers_flag` names the REPL pool's size (`--lean-workers` where `--workers`
    means something else, as in `serve` and `worker`)."""
    return stack_options(
        click.option("--env", type=click.Choice(["repl", "dojo"]), default=None, help="Lean backend (default repl)."),
        click.option(
            "--project-dir",
            type=click.Path(path_type=Path),
            help="Lake project to check in (default: the miniF2F project `prover setup` writes to <home>/miniF2F).",
        ),
        click.option("--repl-command", help="Command that starts one REPL process (overrides the built REPL)."),
        click.option(workers_flag, type=click.IntRange(min=1), help="Lean REPL processes (default cores - 1)."),
    )


lean_options = lean_option_group()
model_options = stack_options(
    click.option("--backend", type=click.Choice(["hf", "vllm", "openai"]), default=None, help="Model backend."),
    click.option("--model", help="Model name or local path (default EleutherAI/llemma_7b)."),
    click.option(
        "--base-url",
        multiple=True,
        help="--backend openai: server base URL (repeat to rotate; default http://127.0.0.1:8000/v1).",
    ),
    click.option("--prompt-format", help="llemma, reprover, or a template file."),
    click.option("--temperature", type=float, help="0 = beam search; > 0 = sampling."),
    click.option(
        "--beam-search",
        type=click.Choice(["auto", "on", "off"]),
        default=None,
        help="--backend openai at temperature 0: ask the server for beams (vLLM's use_beam_search; "
        "needs `vllm serve --max-logprobs` >= 2 x --samples). auto (default) tries once; off decodes greedily.",
    ),
)
search_options = stack_options(
    click.option("--expansions", type=click.IntRange(min=1), help="Expansion budget per theorem (default 100)."),
    click.option("--samples", type=click.IntRange(min=1), help="Candidates per expansion (default 32)."),
    click.option("--timeout", type=float, help="Wall-clock budget of one search in seconds (default 600)."),
    click.option("--tactic-timeout", type=float, help="Timeout of one tactic in seconds (default 5)."),
    click.option("--priority", type=click.Choice(["llemma", "reprover"]), help="Node priority scheme."),
)
settings_options = stack_options(
    click.option("--config", "config_file", type=click.Path(path_type=Path), help="TOML settings file."),
    click.option(
        "--set",
        "assignments",
        multiple=True,
        metavar="KEY=VALUE",
        help="Any setting by its dotted name, e.g. --set lean.repl.crash_retries=3 (repeatable; "
        "JSON values such as [1, 2] or true are parsed).",
    ),
)


def warn_about_sampling(settings: Any) -> None:
    """Say so when the settings ask for several candidates a model server may only give once.

    Beam search is not part of the OpenAI API: at temperature 0 an OpenAI-style server gives
    `--samples` candidates only through vLLM's beam-search extension (`--beam-search`); without it
    it decodes greedily, and every candidate would be the same tactic.
    """
    model = settings.model
    if model.backend != "openai" or model.temperature != 0 or settings.search.samples <= 1:
        return
    samples = settings.search.samples
    if model.beam_search == "on":
        return
    if model.beam_search == "off":
        why = "--beam-search off: --backend openai at temperature 0 decodes greedily"
    else:
        why = "--backend openai at temperature 0 decodes greedily unless the server offers beam search (tried once)"
    click.echo(
        f"warning: {why}: the {samples} samples per expansion will be one candidate. Pass --temperature "
        f"(e.g. 1.0) to sample them, or --beam-search on with a vLLM server (`vllm serve --max-logprobs "
        f"{max(2 * samples, 20)}`).",
        err=True,
    )


def parse_assignment(text: str) -> dict[str, Any]:
    """`lean.repl.crash_retries=3` as nested overrides `{"lean": {"repl": {"crash_retries": 3}}}`.

    The value is read as JSON when it parses (numbers, booleans, lists), else kept as a string.
    Raises `click.BadParameter` naming the flag for a malformed assignment.
    """
    key, separator, raw = text.partition("=")
    path = [part.strip() for part in key.split(".")]
    if not separator or len(path) < 2 or not all(path):
        raise click.BadParameter(
            f"{text!r}: expected SECTION.FIELD=VALUE, e.g. lean.repl.workers=4", param_hint="--set"
        )
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    nested: dict[str, Any] = {path[-1]: value}
    for part in reversed(path[:-1]):
        nested = {part: nested}
    return nested


def settings_overrides(options: dict[str, Any], **extra: dict[str, Any]) -> dict[str, Any]:
    """The `load_settings` overrides from the shared flags, the command's own sections and `--set`.

    The overrides are nested like the settings (`--workers` is `lean.repl.workers`). Unset flags are
    None and fall through to the TOML file, `PROVER_*` variables and defaults. `--repl-command` is
    split like a shell would (quotes keep a path with spaces in one argument). `--set` comes last,
    so it wins over the named flags.
    """
    overrides: dict[str, Any] = {
        "lean": {
            "backend": options.get("env"),
            "project_dir": options.get("project_dir"),
            "repl": {
                "workers": options.get("workers"),
                "command": shlex.split(options["repl_command"]) if options.get("repl_command") else None,
            },
        },
        "model": {
            "backend": options.get("backend"),
            "name": options.get("model"),
            "base_urls": list(options.get("base_url") or ()) or None,
            "prompt_format": options.get("prompt_format"),
            "temperature": options.get("temperature"),
            "beam_search": options.get("beam_search"),
        },
        "search": {
            "expansions": options.get("expansions"),
            "samples": options.get("samples"),
            "timeout_s": options.get("timeout"),
            "tactic_timeout_s": options.get("tactic_timeout"),
            "priority": options.get("priority"),
        },
    }
    for section, fields in extra.items():
        overrides = deep_merge(overrides, {section: fields})
    for assignment in options.get("assignments") or ():
        overrides = deep_merge(overrides, parse_assignment(assignment))
    return overrides
