"""A stand-in for the Lean FRO's comparator (github.com/leanprover/comparator) speaking its real CLI.

Run it as the real tool is run, in the Lake project holding the two modules:
`python tests/stand_ins/comparator_stand_in.py CONFIG.json` (our judge puts `lake env` in front of
the real binary; the stand-in needs no Lean). Standard library only, none of our code, so the judge
is tested against an independent reading of the tool's interface.

What it shares with the real tool (from its README, `Main.lean` and `runtests.lean`):
- the one argument is a JSON config with `challenge_module`, `solution_module`, `theorem_names`,
  `permitted_axioms`, `enable_nanoda` (all required), optional `definition_names` and
  `json_output_path`; a missing argument or field is an uncaught exception;
- `landrun` and `lean4export` are found through `COMPARATOR_LANDRUN` / `COMPARATOR_LEAN4EXPORT`
  (default: the names on PATH), `nanoda_bin` through `COMPARATOR_NANODA`; one that cannot be run
  fails the step that needs it;
- stdout lines in order: `Building Challenge`, `Exporting #[...] from Challenge`, the same for the
  solution, `Running Lean default kernel on solution.`, `Lean default kernel accepts the solution`,
  `Your solution is okay!`;
- exit status 0 when every listed theorem matches, uses permitted axioms only and the kernel accepts;
  otherwise 1 with `uncaught exception: MESSAGE` on stderr (`Some targets failed:` then one
  `- NAME: reason` line per target, or `Child exited with 1` when a sandboxed build fails);
- the JSON report at `json_output_path` (`reports` with `target`, `targetKind`, `failureCategory`
  (`comparison` | `axioms` | null), `failureMessage`, `unpermittedAxioms`, `transitiveAxioms`, then
  `kernelAccepted`, `kernelFailureMessage`, `nanodaAccepted`, `nanodaFailureMessage`), written once the
  exports are compared and again after the kernel ran; never written when a build fails.

Its "Lean" is a toy, enough to drive every verdict:
- a module builds unless it mentions an identifier starting with `bad_` (`unknown identifier`);
- a theorem's statement is its text from `theorem NAME` to `:=`, whitespace collapsed; the challenge's
  and the solution's must be equal;
- axioms: `sorry`/`admit` use `sorryAx`, `native_decide` uses `Lean.ofReduceBool`, a declared
  `axiom X` is used by the theorems after it, `simp`/`omega`/`linarith`/`norm_num` use `propext`;
- a proof mentioning `kernel_reject` passes the comparison but is rejected by the kernel replay.
`COMPARATOR_STAND_IN_SLEEP_S` makes it sleep before building (to test timeouts);
`COMPARATOR_STAND_IN_LOG` names a file it appends one line per run to (the config path it was given).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

REQUIRED = ("challenge_module", "solution_module", "theorem_names", "permitted_axioms", "enable_nanoda")
PRIMITIVES = [
    *("Nat.add", "Nat.sub", "Nat.mul", "Nat.pow", "Nat.gcd", "Nat.div", "Nat.mod", "Nat.beq", "Nat.ble"),
    *("Nat.land", "Nat.lor", "Nat.xor", "Nat.shiftLeft", "Nat.shiftRight", "String.ofList"),
]


class Uncaught(Exception):
    """Ends the run like an uncaught Lean `IO` exception: message on stderr, exit status 1."""


def _tool(variable: str, default: str) -> str:
    name = os.environ.get(variable, default)
    found = shutil.which(name) if os.sep not in name else (name if os.access(name, os.X_OK) else None)
    if not found:
        raise Uncaught(f"could not execute external process '{name}'")
    return found


def _module_file(module: str) -> Path:
    return Path(*module.split(".")).with_suffix(".lean")


def _libraries() -> set[str]:
    try:
        text = Path("lakefile.toml").read_text(encoding="utf-8")
    except FileNotFoundError:
        return set()
    return set(re.findall(r'\[\[lean_lib\]\]\s*name\s*=\s*"([^"]+)"', text))


def _build(module: str) -> str:
    """The module's text if it "compiles"; prints what lake would print either way."""
    print(f"Building {module}", flush=True)
    _tool("COMPARATOR_LANDRUN", "landrun")
    if module not in _libraries():
        print(f"error: unknown target '{module}'", flush=True)
        raise Uncaught("Child exited with 1")
    try:
        text = _module_file(module).read_text(encoding="utf-8")
    except FileNotFoundError:
        print(f"error: no such file or directory: {_module_file(module)}", flush=True)
        raise Uncaught("Child exited with 1") from None
    bad = re.search(r"\bbad_\w+", text)
    if bad:
        line = text[: bad.start()].count("\n") + 1
        print(f"✖ [2/2] Building {module}\nerror: {module}.lean:{line}:2: unknown identifier '{bad.group()}'")
        print("error: build failed", flush=True)
        raise Uncaught("Child exited with 1")
    if re.search(r"\b(sorry|admit)\b", text):
        print(f"⚠ [2/2] Built {module}\nwarning: {module}.lean:1:8: declaration uses 'sorry'")
    print("Build completed successfully.", flush=True)
    return text


def _theorems(text: str) -> dict[str, dict[str, Any]]:
    """name -> {statement, axioms} for each `theorem` of the toy language."""
    found: dict[str, dict[str, Any]] = {}
    declared: list[str] = []
    pieces = re.split(r"(?m)^(?=(?:theorem|lemma|axiom)\s)", text)
    for piece in pieces:
        axiom = re.match(r"axiom\s+(\S+)", piece)
        if axiom:
            declared.append(axiom.group(1))
            continue
        match = re.match(r"(?:theorem|lemma)\s+(\S+)(.*?):=(.*)", piece, re.S)
        if not match:
            continue
        name, signature, proof = match.group(1), match.group(2), match.group(3)
        axioms: set[str] = set(declared)
        if re.search(r"\b(sorry|admit)\b", proof):
            axioms.add("sorryAx")
        if "native_decide" in proof:
            axioms.add("Lean.ofReduceBool")
        if re.search(r"\b(simp|omega|linarith|norm_num|field_simp)\b", proof):
            axioms.add("propext")
        found[name] = {
            "statement": " ".join(f"{name}{signature}".split()),
            "axioms": sorted(axioms),
            "kernel_reject": "kernel_reject" in proof,
        }
    return found


def _export(module: str, targets: list[str]) -> None:
    _tool("COMPARATOR_LEAN4EXPORT", "lean4export")
    print(f"Exporting #[{', '.join(targets)}] from {module}", flush=True)


def _report(path: str | None, report: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(report, separators=(",", ":")), encoding="utf-8")


def run(argv: list[str]) -> int:
    if not argv:
        raise Uncaught("Expected config file path as first argument.")
    try:
        config = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Uncaught(f"no such file or directory (error code: 2)\n  file: {argv[0]}") from None
    except json.JSONDecodeError as error:
        raise Uncaught(f"offset {error.pos}: invalid JSON") from None
    for key in REQUIRED:
        if key not in config:
            raise Uncaught(f"property not found: {key}")
    log = os.environ.get("COMPARATOR_STAND_IN_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"{Path.cwd()} {argv[0]}\n")
    delay = float(os.environ.get("COMPARATOR_STAND_IN_SLEEP_S", "0") or 0)
    if delay:
        time.sleep(delay)
    names: list[str] = list(config["theorem_names"])
    permitted = set(config["permitted_axioms"])
    targets = [*names, *config["permitted_axioms"], *PRIMITIVES, *config.get("definition_names", [])]
    challenge_text = _build(config["challenge_module"])
    _export(config["challenge_module"], targets)
    solution_text = _build(config["solution_module"])
    _export(config["solution_module"], targets)
    challenge, solution = _theorems(challenge_text), _theorems(solution_text)
    reports: list[dict[str, Any]] = []
    for name in names:
        category = message = None
        found = solution.get(name)
        axioms: list[str] = found["axioms"] if found else []
        if name not in challenge:
            category, message = "comparison", f"Const not found in challenge: '{name}'"
        elif found is None:
            category, message = "comparison", f"Const not found in solution: '{name}'"
        elif found["statement"] != challenge[name]["statement"]:
            category, message = "comparison", f"Const does not match between challenge and target '{name}'"
        else:
            illegal = [axiom for axiom in axioms if axiom not in permitted]
            if illegal:
                category, message = "axioms", f"Illegal axiom detected: '{illegal[0]}'"
        reports.append(
            {
                "target": name,
                "targetKind": "theorem",
                "failureCategory": category,
                "failureMessage": message,
                "unpermittedAxioms": [axiom for axiom in axioms if axiom not in permitted],
                "transitiveAxioms": axioms,
            }
        )
    result: dict[str, Any] = {
        "reports": reports,
        "kernelAccepted": None,
        "kernelFailureMessage": None,
        "nanodaAccepted": None,
        "nanodaFailureMessage": None,
    }
    output = config.get("json_output_path")
    _report(output, result)
    failed = [report for report in reports if report["failureCategory"]]
    if failed:
        lines = "".join(f"- {report['target']}: {report['failureMessage']}\n" for report in failed)
        raise Uncaught("Some targets failed:\n" + lines)
    if config["enable_nanoda"]:
        print("Running nanoda kernel on solution", flush=True)
        _tool("COMPARATOR_NANODA", "nanoda_bin")
        result["nanodaAccepted"] = True
        print("Nanoda kernel accepts the solution", flush=True)
    print("Running Lean default kernel on solution.", flush=True)
    if any(solution[name]["kernel_reject"] for name in names):
        result["kernelAccepted"] = False
        result["kernelFailureMessage"] = "(kernel) declaration type mismatch"
        _report(output, result)
        raise Uncaught("(kernel) declaration type mismatch")
    result["kernelAccepted"] = True
    _report(output, result)
    print("Lean default kernel accepts the solution", flush=True)
    print("Your solution is okay!", flush=True)
    return 0


def main() -> int:
    try:
        return run(sys.argv[1:])
    except Uncaught as error:
        sys.stdout.flush()
        sys.stderr.write(f"uncaught exception: {error}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
