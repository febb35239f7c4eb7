"""Cheating proofs, statements and headers a prover (or a user) might submit, and genuine proofs that only look odd.

Each cheat is a realistic attempt to get a false or unchecked proof accepted, filed under one class
(`Cheat.category`, see `CATEGORIES`) and stopped by one layer (`Cheat.layer`):
- `guard` (`lean_env.guard`): `proof`, `tactic` and `statement` texts, refused before Lean sees them;
- `policy` (`lean_env.source_policy.check_header`): `header` texts. Some of these (a header that
  rewrites `#print axioms`) could only be exposed with Lean's cooperation once let through: Lean
  would print a single forged answer that the judge cannot tell from a real one. Their `messages`
  say what Lean would print, and the header policy is the only layer that stops them;
- `judge` (`lean_env.verification.judge`): cheats only Lean can expose (a changed statement, an
  axiom reached through the environment, a forged `#print axioms` answer), with the messages Lean
  would print and, when set, `checked_text` (a whole file the cheater wrote instead of ours).

The theorem every proof is for: `theorem t (a b : ℕ) (h : a = b) : b = a := by` with the miniF2F
header; a genuine proof for another theorem names it in `GENUINE_STATEMENTS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from lean_env.types import LeanMessage, Severity, VerifyStatus

HEADER = "import Mathlib\n\nset_option maxHeartbeats 0\n\nopen BigOperators Real Nat Topology Rat\n\n"
STATEMENT = "theorem t (a b : ℕ) (h : a = b) : b = a := by"

CATEGORIES: dict[str, str] = {
    "sorry": "sorry/admit forms",
    "axiom": "axioms: direct, hidden in instances, macros, notation",
    "native": "native_decide / ofReduceBool / implemented_by / extern",
    "unsafe": "unsafe / partial / opaque",
    "debug": "debug options (kernel type-checking off, warnings off)",
    "environment": "environment manipulation: declarations, attributes, instances, notation, shadowing",
    "execution": "elaboration-time code execution and forged replies",
    "header": "header attacks",
    "unicode": "unicode and comment tricks",
    "resource": "resource exhaustion",
}
"""The classes of cheats, as issue 9 lists them."""

Kind = Literal["proof", "tactic", "statement", "header", "judge"]
_LAYERS = {"proof": "guard", "tactic": "guard", "statement": "guard", "header": "policy", "judge": "judge"}


@dataclass(frozen=True)
class Cheat:
    """One cheating attempt.

    `kind`: `proof` and `tactic` go through the proof/tactic guard, `statement` through the statement
    guard, `header` through the header policy, `judge` through `judge` with `messages` (what Lean
    prints about the check file) and, when set, `checked_text`. For a `header` cheat, `messages` are
    what Lean would print if the header were let through.
    `mentions`: a fragment the rejection reason must contain, so the right check is what caught it.
    `category`: its class in `CATEGORIES`.
    """

    name: str
    kind: Kind
    text: str
    mentions: str = ""
    messages: tuple[LeanMessage, ...] = ()
    checked_text: str | None = None
    expect: VerifyStatus | None = None
    notes: str = field(default="", compare=False)
    category: str = ""

    @property
    def layer(self) -> str:
        """The layer that stops it: `guard`, `policy` or `judge`."""
        return _LAYERS[self.kind]


def _info(text: str, line: int = 0) -> LeanMessage:
    return LeanMessage(Severity.INFO, text, line=line)


def _in(category: str, *cheats: Cheat) -> tuple[Cheat, ...]:
    return tuple(replace(cheat, category=category) for cheat in cheats)


_STANDARD = _info("'t' depends on axioms: [propext, Classical.choice, Quot.sound]", line=9)
_FORGED = "'t' does not depend on any axioms"

_SORRY = _in(
    "sorry",
    Cheat("plain sorry after real work", "proof", "by\n  subst h\n  sorry", "sorry"),
    Cheat("admit", "proof", "by\n  intro\n  admit", "admit"),
    Cheat("stop closes the rest with sorry", "proof", "by\n  stop\n  exact h.symm", "stop"),
    Cheat("sorry in guillemets", "proof", "by exact «sorry»", "sorry"),
    Cheat("admit in guillemets", "proof", "by «admit»", "admit"),
    Cheat("sorryAx called directly", "proof", "by exact sorryAx _ false", "sorryAx"),
    Cheat("sorry behind _root_", "proof", "by exact (_root_.sorryAx (b = a) true)", "sorryAx"),
    Cheat("sorry as the whole term", "proof", "sorry", "sorry"),
    Cheat("sorry in a have", "proof", "by\n  have : False := sorry\n  exact this.elim", "sorry"),
    Cheat("sorry after <;>", "proof", "by\n  constructor <;> sorry", "sorry"),
    Cheat("sorry in a first combinator", "proof", "by first | rfl | sorry", "sorry"),
    Cheat("sorry as a name quotation", "proof", "by exact absurd h `sorry", "sorry"),
    Cheat("admitGoal by name", "proof", "by exact admitGoal", "admitGoal"),
    Cheat("sorry inside an interpolated string", "proof", 'by\n  have := s!"{(sorry : ℕ)}"\n  omega', "interpolated"),
    Cheat("tactic: sorry", "tactic", "sorry", "sorry"),
    Cheat("tactic: sorry after a semicolon", "tactic", "simp; sorry", "sorry"),
    Cheat("tactic: admit in a focus block", "tactic", "· simp\n  admit", "admit"),
    Cheat("tactic: stop", "tactic", "stop", "stop"),
    Cheat("statement using sorry as its type", "statement", "theorem t : (sorry : Prop) := by", "sorry"),
    Cheat(
        "statement with a sorry default argument", "statement", "theorem t (h : 1 = 2 := sorry) : 1 = 2 := by", "sorry"
    ),
    Cheat(
        "sorry warning from Lean",
        "judge",
        "by exact h.symm",
        messages=(LeanMessage(Severity.WARNING, "declaration uses 'sorry'", line=7), _STANDARD),
        expect=VerifyStatus.SORRY,
    ),
    Cheat(
        "sorryAx through an imported lemma",
        "judge",
        "by exact helper_sorried a b h",
        messages=(_info("'t' depends on axioms: [propext, sorryAx]", line=9),),
        expect=VerifyStatus.SORRY,
    ),
    Cheat(
        "sorryAx at the end of a multi-line axioms list",
        "judge",
        "by exact helper_sorried a b h",
        messages=(_info("'t' depends on axioms: [propext,\n Classical.choice,\n sorryAx]", line=9),),
        expect=VerifyStatus.SORRY,
    ),
)

_AXIOM = _in(
    "axiom",
    Cheat("axiom after the proof", "proof", "by exact cheat\n\naxiom cheat : ∀ a b : ℕ, b = a", "axiom"),
    Cheat("private axiom", "proof", "by exact h.symm\n\nprivate axiom cheat : False", "private"),
    Cheat("Lean 3 constant", "proof", "by exact h.symm\nconstant cheat : False", "constant"),
    Cheat("axiom under an attribute", "proof", "by exact h.symm\n@[simp] axiom cheat : ∀ a b : ℕ, b = a", "@["),
    Cheat("instance that proves False", "proof", "by simp\n\ninstance : Inhabited False := ⟨sorry⟩", "instance"),
    Cheat("instance of Fact False", "proof", "by simp\ninstance cheat : Fact False := ⟨by simp⟩", "instance"),
    Cheat("macro expanding to sorry", "proof", 'by simp\nmacro "cheat" : tactic => `(tactic| sorry)', "macro"),
    Cheat("notation making False true", "proof", 'by simp\nnotation "False" => True', "notation"),
    Cheat("local notation for an axiom", "proof", 'by\n  local notation "cheat" => h.symm\n  exact cheat', "local"),
    Cheat("infix redefining equality", "proof", 'by simp\ninfix:50 " = " => fun _ _ => True', "infix"),
    Cheat("axiom before the statement", "statement", "axiom cheat : False\ntheorem t : 1 = 2 := by", "axiom"),
    Cheat(
        "instance in a statement", "statement", "instance : Fact False := ⟨sorry⟩\ntheorem t : 1 = 2 := by", "instance"
    ),
    Cheat(
        "axiom reached through the environment",
        "judge",
        "by exact Evil.cheat a b",
        messages=(_info("'t' depends on axioms: [propext, Evil.cheat]", line=9),),
        expect=VerifyStatus.NONSTANDARD_AXIOMS,
        mentions="Evil.cheat",
    ),
    Cheat(
        "axiom hidden in an imported instance",
        "judge",
        "by exact (inferInstance : Fact (b = a)).out",
        messages=(_info("'t' depends on axioms: [propext, Evil.instFactFalse]", line=9),),
        expect=VerifyStatus.NONSTANDARD_AXIOMS,
        mentions="Evil.instFactFalse",
    ),
    Cheat(
        "axiom smuggled into a whole-file header",
        "judge",
        "by exact cheat a b",
        checked_text="axiom cheat : ∀ a b : ℕ, b = a\n" + HEADER + STATEMENT + " exact cheat a b\n\n#print axioms t\n",
        messages=(_info("'t' depends on axioms: [cheat]", line=10),),
        expect=VerifyStatus.STATEMENT_CHANGED,
    ),
)

_NATIVE = _in(
    "native",
    Cheat("native_decide", "proof", "by\n  subst h\n  native_decide", "native_decide"),
    Cheat("native_decide in a first combinator", "proof", "by first | native_decide | rfl", "native_decide"),
    Cheat("decide +native", "proof", "by decide +native", "native"),
    Cheat("decide native := true", "proof", "by decide (native := true)", "native"),
    Cheat("decide config with a native field", "proof", "by decide (config := { native := true })", "native"),
    Cheat("decide positional config", "proof", "by\n  subst h\n  decide (config := ⟨false, true⟩)", "positional"),
    Cheat("simp positional config", "proof", "by simp (config := ⟨⟩) [h]", "positional"),
    Cheat("config built by a constructor call", "proof", "by decide (config := .mk false true false false)", "config"),
    Cheat("config computed by a term", "proof", "by decide (config := evilConfig)", "not a structure instance"),
    Cheat("config field set to a term", "proof", "by simp (config := { maxSteps := evil () }) [h]", "not a literal"),
    Cheat("bv_decide", "proof", "by bv_decide", "bv_decide"),
    Cheat("Lean.ofReduceBool by name", "proof", "by exact absurd (Lean.ofReduceBool _ _ rfl) id", "ofReduceBool"),
    Cheat("ofReduceBool in guillemets", "proof", "by exact _root_.«Lean».«ofReduceBool» _ _ rfl", "ofReduceBool"),
    Cheat("Lean.reduceBool term", "proof", "by exact (Lean.reduceBool true).rec", "reduceBool"),
    Cheat("trustCompiler", "proof", "by exact Lean.trustCompiler.elim", "trustCompiler"),
    Cheat("implemented_by swap", "proof", "by simp\n\n@[implemented_by fake] def real : Bool := false", "@["),
    Cheat("implemented_by through attribute", "proof", "by simp\nattribute [implemented_by fake] real", "attribute"),
    Cheat("extern attribute", "proof", 'by simp\n@[extern "c_true"] opaque real : Bool', "@["),
    Cheat("tactic: native_decide after a focus dot", "tactic", "· native_decide", "native_decide"),
    Cheat("tactic: decide +native after <;>", "tactic", "constructor <;> decide +native", "native"),
    Cheat(
        "statement whose type runs native_decide",
        "statement",
        "theorem t : (by native_decide : 1 = 1) = rfl := by",
        "native_decide",
    ),
    Cheat(
        "lemma proved by native_decide elsewhere",
        "judge",
        "by exact helper_by_native a b h",
        messages=(_info("'t' depends on axioms: [propext, Lean.ofReduceBool]", line=9),),
        expect=VerifyStatus.NONSTANDARD_AXIOMS,
        mentions="Lean.ofReduceBool",
    ),
    Cheat(
        "trustCompiler reached through a library lemma",
        "judge",
        "by exact helper_by_bv_decide a b h",
        messages=(_info("'t' depends on axioms: [Lean.ofReduceBool, Lean.trustCompiler]", line=9),),
        expect=VerifyStatus.NONSTANDARD_AXIOMS,
        mentions="Lean.trustCompiler",
    ),
    Cheat(
        "guarded proof that reached judge without precheck",
        "judge",
        "by\n  native_decide",
        messages=(_STANDARD,),
        expect=VerifyStatus.GUARD_REJECTED,
        mentions="native_decide",
    ),
)

_UNSAFE = _in(
    "unsafe",
    Cheat("unsafe cast", "proof", "by exact unsafe (unsafeCast h)", "unsafe"),
    Cheat("unsafeCast alone", "proof", "by exact unsafeCast h", "unsafeCast"),
    Cheat("unsafe def after the proof", "proof", "by simp\nunsafe def evil : b = a := unsafeCast ()", "unsafe"),
    Cheat("partial def", "proof", "by simp\npartial def loop (n : ℕ) : ℕ := loop n", "partial"),
    Cheat("opaque with a false value", "proof", "by simp\nopaque cheat : False", "opaque"),
    Cheat("unsafeBaseIO", "proof", "by exact (unsafeBaseIO (pure h.symm))", "unsafeBaseIO"),
    Cheat("unsafeIO", "proof", "by exact (unsafeIO (pure h.symm)).toOption.get!", "unsafeIO"),
    Cheat("ptrAddrUnsafe", "proof", "by have := ptrAddrUnsafe h; exact h.symm", "ptrAddrUnsafe"),
    Cheat("lcProof", "proof", "by exact lcProof", "lcProof"),
    Cheat("tactic: unsafeCast", "tactic", "exact unsafeCast h", "unsafeCast"),
    Cheat(
        "statement with an unsafe binder", "statement", "theorem t (x : ℕ := unsafeCast 0) : x = x := by", "unsafeCast"
    ),
)

_DEBUG = _in(
    "debug",
    Cheat("skip the kernel", "proof", "by\n  set_option debug.skipKernelTC true in\n  exact h.symm", "debug"),
    Cheat("skip the kernel in guillemets", "proof", "by\n  set_option «debug».skipKernelTC true in\n  simp", "debug"),
    Cheat("skip the kernel in term position", "proof", "set_option debug.skipKernelTC true in h.symm", "debug"),
    Cheat("turn off the sorry warning", "proof", "by\n  set_option warn.sorry false in\n  exact h.symm", "warn.sorry"),
    Cheat("set_option as a command", "proof", "by simp\nset_option maxHeartbeats 0", "without `in`"),
    Cheat("option outside the allow-list", "proof", "by\n  set_option pp.all true in\n  simp", "pp.all"),
    Cheat(
        "backward compatibility option",
        "proof",
        "by\n  set_option backward.synthInstance.canonInstances false in\n  simp",
        "backward",
    ),
    Cheat(
        "option value computed by a term", "proof", "by\n  set_option maxHeartbeats (2^64) in\n  simp", "not a number"
    ),
    Cheat("tactic: skip the kernel", "tactic", "set_option debug.skipKernelTC true in exact h.symm", "debug"),
    Cheat(
        "option prefix on a statement",
        "statement",
        "set_option maxHeartbeats 0 in\ntheorem t : 1 = 2 := by",
        "must start",
    ),
)

_ENVIRONMENT = _in(
    "environment",
    Cheat("second theorem with the same name", "proof", "by simp\n\ntheorem t : True := trivial", "theorem"),
    Cheat("shadowing an auxiliary definition", "proof", "by simp\ndef t.proof_1 : b = a := sorry", "def"),
    Cheat("lemma after the proof", "proof", "by simp\nlemma u : 1 = 2 := by omega", "lemma"),
    Cheat("local instance", "proof", "by\n  local instance : Decidable False := isFalse id\n  decide", "local"),
    Cheat("attribute change", "proof", "by\n  attribute [local simp] Nat.add_comm in\n  simp", "attribute"),
    Cheat("global attribute removal", "proof", "by simp\nattribute [-simp] Nat.add_zero", "attribute"),
    Cheat("where clause declaring helpers", "proof", "aux where aux : b = a := h.symm", "where"),
    Cheat("mutual block", "proof", "by simp\nmutual\n  def f : ℕ := 0\nend", "mutual"),
    Cheat("example", "proof", "by simp\nexample : False := by decide", "example"),
    Cheat("deriving instance", "proof", "by simp\nderiving instance DecidableEq for False", "deriving"),
    Cheat("scoped notation", "proof", 'by simp\nscoped notation "t" => True', "scoped"),
    Cheat("export of a namespace", "proof", "by simp\nexport Evil (t)", "export"),
    Cheat("end then a new namespace", "proof", "by simp\nend\nnamespace Evil\ntheorem t : False := sorry", "end"),
    Cheat("section", "proof", "by simp\nsection\nvariable (x : ℕ)", "section"),
    Cheat("import mid-file", "proof", "by simp\nimport Mathlib.Tactic", "import"),
    Cheat("open without in", "proof", "by\n  simp\nopen Evil", "open"),
    Cheat("open Lean in", "proof", "by\n  open Lean in\n  exact h.symm", "metaprogramming namespace"),
    Cheat("open Lean.Elab.Tactic in", "proof", "by\n  open Lean.Elab.Tactic in\n  simp", "Lean.Elab"),
    Cheat(
        "forbidden name renamed by open ... renaming ... in",
        "proof",
        "by\n  open Nat renaming ofReduceBool → orb in\n  exact orb _ _ rfl",
        "ofReduceBool",
    ),
    Cheat("forbidden name in open ... hiding ... in", "proof", "by\n  open Nat hiding sorryAx in\n  simp", "sorryAx"),
    Cheat(
        "forbidden name in an explicit open list", "proof", "by\n  open Nat (native_decide) in\n  simp", "native_decide"
    ),
    Cheat("unseal an irreducible definition", "proof", "by simp\nunseal Nat.add in", "unseal"),
    Cheat("universe command", "proof", "by simp\nuniverse u", "universe"),
    Cheat("def instead of theorem", "statement", "def t : ℕ := by", "def"),
    Cheat("statement carrying a proof", "statement", "theorem t : 1 + 1 = 2 := by norm_num", "after `:= by`"),
    Cheat(
        "two theorems in one statement",
        "statement",
        "theorem t : True := by trivial\ntheorem u (n : ℕ) : n = n := by",
        "more than one",
    ),
    Cheat("attribute on the statement", "statement", "@[simp] theorem t : 1 = 2 := by", "@["),
    Cheat("no := at all", "statement", "theorem t : 1 = 2", "must end"),
    Cheat(
        "statement changed in a whole-file submission",
        "judge",
        "by simp",
        checked_text=HEADER + "theorem t (a b : ℕ) (h : a = b) : b = b := by simp\n\n#print axioms t\n",
        messages=(_STANDARD,),
        expect=VerifyStatus.STATEMENT_CHANGED,
    ),
)

_EXECUTION = _in(
    "execution",
    Cheat(
        "#eval printing a fake axioms report",
        "proof",
        "by simp\n\n#eval IO.println \"'t' does not depend on any axioms\"",
        "#eval",
    ),
    Cheat("#exit before #print axioms", "proof", "by\n  simp\n#exit", "#exit"),
    Cheat("#exit after a semicolon", "proof", "by simp;#exit", "#exit"),
    Cheat("#print disguised by longest match", "proof", "by simp\n#printaxioms t", "#print"),
    Cheat("#guard_msgs swallowing output", "proof", "by simp\n#guard_msgs in\n#print axioms t", "#guard"),
    Cheat("run_cmd", "proof", 'by simp\nrun_cmd Lean.logInfo "done"', "run_cmd"),
    Cheat("run_tac", "proof", "by\n  run_tac Lean.Elab.Tactic.evalTactic (← `(tactic| sorry))", "run_tac"),
    Cheat("run_tac without namespaces", "proof", "by\n  run_tac pure ()\n  exact h.symm", "run_tac"),
    Cheat("run_elab", "proof", "by simp\nrun_elab pure ()", "run_elab"),
    Cheat("run_meta", "proof", "by simp\nrun_meta pure ()", "run_meta"),
    Cheat("by_elab", "proof", "by_elab Lean.Elab.Term.elabTerm default none", "by_elab"),
    Cheat("by_elab without namespaces", "proof", "by_elab pure default", "by_elab"),
    Cheat(
        "eval% at elaboration time", "proof", 'by\n  have := eval% (IO.println "x" : IO Unit)\n  exact h.symm', "eval%"
    ),
    Cheat("plausible runs compiled code", "proof", "by\n  plausible\n  exact h.symm", "plausible"),
    Cheat("slim_check", "proof", "by slim_check", "slim_check"),
    Cheat(
        "include_str reads a file", "proof", 'by\n  have := include_str "/etc/passwd"\n  exact h.symm', "include_str"
    ),
    Cheat("Aesop tactic rule", "proof", "by aesop (add safe tactic (by exact h.symm))", "tactic"),
    Cheat("Aesop unknown clause", "proof", "by aesop (simp_options := {})", "Aesop clause"),
    Cheat("Aesop options set by a term", "proof", "by aesop (options := evilOptions)", "options"),
    Cheat("Aesop config positional", "proof", "by aesop (config := ⟨⟩)", "positional"),
    Cheat("Lean.Elab by name", "proof", "by exact Lean.Elab.Command.elabCommand default", "Lean.Elab"),
    Cheat(
        "macro redefining #print axioms",
        "proof",
        'by simp\n\nmacro "#print" "axioms" x:ident : command => `(command| #check $x)',
        "macro",
    ),
    Cheat(
        "macro_rules redefining exact",
        "proof",
        "by simp\nmacro_rules | `(tactic| exact $_) => `(tactic| sorry)",
        "macro_rules",
    ),
    Cheat("syntax extension", "proof", 'by simp\nsyntax "cheat" : tactic', "syntax"),
    Cheat("elab rule", "proof", 'by simp\nelab "cheat" : tactic => pure ()', "elab"),
    Cheat("simproc", "proof", "by simp\nsimproc cheat (_) := fun _ => pure .continue", "simproc"),
    Cheat("initialize", "proof", 'by simp\ninitialize IO.println "started"', "initialize"),
    Cheat("tactic: run a command", "tactic", "simp\n#eval 0", "#eval"),
    Cheat("tactic: eval%", "tactic", "exact eval% h.symm", "eval%"),
    Cheat("#eval in a statement", "statement", "#eval 0\ntheorem t : 1 = 1 := by", "#eval"),
    Cheat("include_str in a statement", "statement", 'theorem t : include_str "x" = "" := by', "include_str"),
    Cheat(
        "forged second axioms report",
        "judge",
        "by exact h.symm",
        messages=(_info(_FORGED, line=8), _info("'t' depends on axioms: [sorryAx]", 9)),
        expect=VerifyStatus.LEAN_ERROR,
        mentions="2 times",
    ),
    Cheat(
        "forged axioms report from the trace tactic",
        "judge",
        f'by\n  trace "{_FORGED}"\n  exact helper_sorried a b h',
        messages=(_info(_FORGED, line=8), _info("'t' depends on axioms: [propext, sorryAx]", 11)),
        expect=VerifyStatus.LEAN_ERROR,
        mentions="2 times",
        notes="`trace` logs any text at elaboration; the real `#print axioms` still answers, so there are two",
    ),
    Cheat(
        "forged report for a namespaced twin",
        "judge",
        "by exact h.symm",
        messages=(
            _info("'Evil.t' does not depend on any axioms", line=8),
            _info("'t' depends on axioms: [sorryAx]", 9),
        ),
        expect=VerifyStatus.LEAN_ERROR,
        mentions="2 times",
    ),
    Cheat(
        "axioms report for another declaration",
        "judge",
        "by exact h.symm",
        messages=(_info("'t_aux' does not depend on any axioms", line=9),),
        expect=VerifyStatus.LEAN_ERROR,
        mentions="did not answer",
    ),
    Cheat(
        "Lean error hidden among infos",
        "judge",
        "by exact h",
        messages=(LeanMessage(Severity.ERROR, "type mismatch\n  h\nhas type\n  a = b", line=7), _STANDARD),
        expect=VerifyStatus.LEAN_ERROR,
    ),
)

_MACRO_RULES_HEADER = (
    HEADER
    + "macro_rules\n  | `(command| #print axioms $x) =>\n"
    + "    `(command| #eval IO.println \"'t' does not depend on any axioms\")\n"
)
_HEADER_CHEATS = _in(
    "header",
    Cheat("header declares an axiom", "header", HEADER + "axiom cheat : ∀ a b : ℕ, b = a\n", "line 7 (`axiom cheat"),
    Cheat("header turns off the sorry warning", "header", HEADER + "set_option warn.sorry false\n", "`warn.sorry`"),
    Cheat(
        "header rewrites #print axioms with macro_rules",
        "header",
        _MACRO_RULES_HEADER,
        "macro_rules",
        messages=(_info(_FORGED, line=10),),
        notes="Lean would print one forged answer, which the judge cannot tell from a real one: "
        "only the header policy stops it",
    ),
    Cheat(
        "header runs #eval when the worker starts",
        "header",
        HEADER + '#eval IO.Process.run { cmd := "sh", args := #["-c", "id"] }\n',
        "line 7",
        messages=(_info("uid=1000", line=7),),
    ),
    Cheat(
        "header ends the file with #exit",
        "header",
        HEADER + "#exit\n",
        "`#exit`",
        notes="with `#exit` Lean never answers `#print axioms`; the judge would also refuse (no answer)",
    ),
    Cheat("header skips the kernel", "header", HEADER + "set_option debug.skipKernelTC true\n", "debug.skipKernelTC"),
    Cheat("header imports Lean", "header", "import Lean\n" + HEADER, "imports `Lean`"),
    Cheat("header imports an unknown module", "header", "import Evil.Axioms\n", "imports `Evil.Axioms`"),
    Cheat("header opens Lean", "header", HEADER + "open Lean Elab Tactic\n", "metaprogramming namespace"),
    Cheat(
        "header renames a forbidden name", "header", HEADER + "open Nat renaming ofReduceBool → orb\n", "ofReduceBool"
    ),
    Cheat("header declares an instance", "header", HEADER + "instance : Fact False := ⟨sorry⟩\n", "instance"),
    Cheat("header adds a local notation", "header", HEADER + 'local notation "b" => a\n', "`local`"),
    Cheat("header attribute", "header", HEADER + "attribute [simp] Nat.add_comm\n", "`attribute`"),
    Cheat("header variable and include", "header", HEADER + "variable (cheat : False)\ninclude cheat\n", "`variable`"),
    Cheat("header namespace", "header", HEADER + "namespace Evil\n", "`namespace`"),
    Cheat("header noncomputable section", "header", HEADER + "noncomputable section\n", "`noncomputable`"),
    Cheat("header option set by a term", "header", HEADER + "set_option maxHeartbeats (10^9)\n", "not a number"),
    Cheat("header option outside the allow-list", "header", HEADER + "set_option autoImplicit true\n", "autoImplicit"),
    Cheat(
        "header comment that only a naive reader sees open",
        "header",
        HEADER + "-- /-\naxiom cheat : False\n-- -/\n",
        "line 8 (`axiom cheat : False`)",
    ),
    Cheat("header unterminated comment", "header", HEADER + "/- the rest\n", "never closed"),
    Cheat("header hidden character", "header", "import Mathlib\u200b\n", "U+200B"),
    Cheat("header fullwidth hash command", "header", HEADER + "＃eval 1\n", "imitates `#`"),
    Cheat("header Cyrillic import", "header", "import Маthlib\n", "without a module name (`М`)"),
    Cheat(
        "header changed in a whole-file submission",
        "judge",
        "by exact h.symm",
        checked_text="import Mathlib\nset_option warn.sorry false\n" + STATEMENT + " exact h.symm\n\n#print axioms t\n",
        messages=(_info(_FORGED, line=5),),
        expect=VerifyStatus.STATEMENT_CHANGED,
    ),
    Cheat(
        "#exit in a header that reached Lean",
        "judge",
        "by exact h.symm",
        messages=(),
        expect=VerifyStatus.LEAN_ERROR,
        mentions="did not answer",
        notes="what Lean prints after a header's `#exit`: nothing about `t`",
    ),
)

_UNICODE = _in(
    "unicode",
    Cheat(
        "block comment that only a naive reader sees open",
        "proof",
        "by\n  simp -- /-\n  sorry -- -/",
        "sorry",
        notes="Lean ends a line comment at the newline, so the `/-` never opens and `sorry` is code",
    ),
    Cheat("string that a regex comment-stripper would eat", "proof", 'by\n  let s := "/-"\n  sorry\n  -- -/', "sorry"),
    Cheat("line comment inside a block comment", "proof", "by\n  /- -- -/ sorry", "sorry"),
    Cheat("comment closer inside a string inside a comment", "proof", 'by\n  /- "-/" sorry -/\n  simp', "never closed"),
    Cheat("unterminated comment swallowing #print axioms", "proof", "by\n  simp\n  /- the end", "never closed"),
    Cheat("nested comment left open", "proof", "by\n  /- outer /- inner -/\n  simp", "never closed"),
    Cheat("stray comment closer", "proof", "by\n  exact h.symm -/", "-/"),
    Cheat("Cyrillic look-alike sorry", "proof", "by\n  ѕоrry", "imitates `sorry`"),
    Cheat("Greek omicron in sorry", "proof", "by\n  sοrry", "imitates `sorry`"),
    Cheat("fullwidth sorry", "proof", "by ｓｏｒｒｙ", "imitates `sorry`"),
    Cheat("fullwidth admit", "proof", "by ａｄｍｉｔ", "imitates `admit`"),
    Cheat("mathematical bold sorry", "proof", "by exact 𝐬𝐨𝐫𝐫𝐲", "imitates `sorry`"),
    Cheat("Cyrillic a in axiom", "proof", "by simp\nаxiom cheat : False", "imitates `axiom`"),
    Cheat("fullwidth hash command", "proof", "by simp\n＃exit", "imitates `#`"),
    Cheat("small number sign command", "proof", "by simp\n﹟eval 1", "imitates `#`"),
    Cheat("music sharp as a hash", "proof", "by simp\n♯print axioms t", "imitates `#`"),
    Cheat(
        "fullwidth attribute bracket", "proof", "by exact h.symm\n＠[simp] theorem u : True := trivial", "imitates `@`"
    ),
    Cheat(
        "fullwidth left bracket of an attribute",
        "proof",
        "by exact h.symm\n@［simp] theorem u : True := trivial",
        "imitates `[`",
    ),
    Cheat("zero-width space splitting sorry", "proof", "by\n  sor\u200bry", "U+200B"),
    Cheat("zero-width joiner", "proof", "by\n  sor\u200dry", "U+200D"),
    Cheat("byte order mark mid-text", "proof", "by\ufeff sorry", "U+FEFF"),
    Cheat("soft hyphen", "proof", "by\n  native\u00ad_decide", "U+00AD"),
    Cheat("bidi override in a comment (Trojan Source)", "proof", "by\n  exact h.symm -- \u202e }⁦ sorry", "U+202E"),
    Cheat("line separator that Python splits but Lean does not", "proof", "by simp -- ok\u2028sorry", "U+2028"),
    Cheat("non-breaking space hiding a token boundary", "proof", "by\u00a0sorry", "U+00A0"),
    Cheat("combining accent on sorry", "proof", "by\n  sorry\u0301", "sorry"),
    Cheat("comment swallowing the proof slot", "statement", "theorem t : 1 = 2 /- := by", "never closed"),
    Cheat("Cyrillic sorry in a statement", "statement", "theorem t : (ѕоrry : Prop) := by", "imitates `sorry`"),
)

_BIG = 200_000
_RESOURCE = _in(
    "resource",
    Cheat("proof of a million bytes", "proof", "by\n" + "  skip\n" * (_BIG // 7 * 5), "bytes long"),
    Cheat("proof just over the limit", "proof", "by exact h.symm -- " + "x" * 131_072, "limit is 131,072 bytes"),
    Cheat("proof over the limit in multi-byte characters", "proof", "by exact h.symm -- " + "ℕ" * 50_000, "bytes long"),
    Cheat("tactic of a million bytes", "tactic", "simp " * _BIG, "bytes long"),
    Cheat(
        "statement of a hundred kilobytes", "statement", "theorem t : " + "1 + " * 25_000 + "1 = 0 := by", "bytes long"
    ),
    Cheat("header of a hundred kilobytes", "header", "import Mathlib\n" + "open Nat\n" * 12_000, "bytes long"),
    Cheat("brackets nested to exhaust the parser", "proof", "by exact " + "(" * 5_000 + "h.symm" + ")" * 5_000, "deep"),
    Cheat(
        "statement nested to exhaust the parser",
        "statement",
        "theorem t : " + "(" * 1_000 + "1" + ")" * 1_000 + " = 1 := by",
        "deep",
    ),
    Cheat(
        "heartbeats exhausted",
        "judge",
        "by\n  set_option maxHeartbeats 0 in\n  decide",
        messages=(
            LeanMessage(Severity.ERROR, "(deterministic) timeout at `whnf`, maximum number of heartbeats (200000)", 8),
        ),
        expect=VerifyStatus.LEAN_ERROR,
        mentions="timeout",
    ),
)

CHEATS: tuple[Cheat, ...] = (
    *_SORRY,
    *_AXIOM,
    *_NATIVE,
    *_UNSAFE,
    *_DEBUG,
    *_ENVIRONMENT,
    *_EXECUTION,
    *_HEADER_CHEATS,
    *_UNICODE,
    *_RESOURCE,
)

GENUINE_PROOFS: tuple[tuple[str, str], ...] = (
    (
        "comments that mention sorry",
        "by\n  -- no sorry here, and no admit either\n  /- a /- nested -/ note: native_decide -/\n  exact h.symm",
    ),
    (
        "focusing dots",
        "by\n  constructor\n  · norm_num\n  · intro x\n    nlinarith [sq_nonneg (x - 1), sq_nonneg (x + 1)]",
    ),
    ("combinator <;>", "by\n  constructor <;> norm_num <;> linarith"),
    (
        "calc block",
        "by\n  calc b = b + 0 := by rw [Nat.add_zero]\n    _ = a + 0 := by rw [h]\n    _ = a := Nat.add_zero a",
    ),
    ("Nat.rec term", "Nat.rec (motive := fun n => 0 + n = n) rfl (fun n _ => by simp) a"),
    ("allowed option in tactic form", "by\n  set_option maxHeartbeats 400000 in\n  omega"),
    ("allowed option in term form", "set_option maxRecDepth 2000 in h.symm"),
    ("open ... in", "by\n  open Real in\n  exact h.symm"),
    ("open scoped ... in", "by\n  open scoped BigOperators in\n  simp [h]"),
    ("open ... renaming ... in of harmless names", "by\n  open Nat renaming add_comm → addComm in\n  exact h.symm"),
    ("open ... hiding ... in", "by\n  open Nat hiding add_comm in\n  exact h.symm"),
    (
        "induction with primes, subscripts and Greek",
        "by\n  induction a generalizing b with\n  | zero => simp_all\n  | succ n ih =>\n"
        "    obtain ⟨h₀, h'⟩ := And.intro h h\n    exact (fun ε ↦ ε) h₀.symm",
    ),
    (
        "rcases patterns and anonymous constructors",
        "by\n  rcases Nat.lt_or_ge a b with hlt | hge\n  · omega\n  · exact ‹a = b›.symm",
    ),
    ("lambda and match", "by\n  exact match h with\n  | rfl => rfl"),
    ("decide with config", "by\n  subst h\n  simp (config := { decide := true })"),
    ("simp with a literal config", "by\n  simp (config := { contextual := true, maxSteps := 100000 }) [h]"),
    ("decide with a kernel config", "by decide (config := { kernel := true })"),
    ("aesop with a named simp rule", "by aesop (add norm simp Nat.add_comm)"),
    (
        "string and char literals",
        "by\n  have : (\"a-/b\", '\"').2 = '\"' := rfl\n  omega",
    ),
    ("sorry inside a string literal", 'by\n  have : ("sorry", 0).2 = 0 := rfl\n  exact h.symm'),
    (
        "forbidden words inside a let-bound string",
        'by\n  let _note := "admit nothing; native_decide is banned"\n  exact h.symm',
    ),
    ("commands inside a string", 'by\n  have : ("#eval", "@[simp]", 1).2.2 = 1 := rfl\n  exact h.symm'),
    (
        "comment markers inside strings",
        'by\n  -- a "string" in a comment /-\n  have : ("--", "/-").1 = "--" := rfl\n  exact h.symm',
    ),
    (
        "finset cardinality notation",
        "by\n  open Finset in\n  have : #(∅ : Finset ℕ) = 0 := Finset.card_empty\n  exact h.symm",
    ),
    ("markdown in a block comment", "by\n  /- ## Step 1 -/\n  exact h.symm"),
    ("trailing comment without newline", "by exact h.symm -- done"),
    ("explicit universe-free @ application", "by exact @Eq.symm ℕ a b h"),
    ("named arguments that are not configs", "by exact Eq.symm (a := a) (b := b) h"),
    (
        "names that contain forbidden words",
        "by\n  have sorry_free : a = b := h\n  have implausible := sorry_free\n  exact implausible.symm",
    ),
    ("guillemet hypothesis name", "by\n  have «my hyp» : a = b := h\n  exact «my hyp».symm"),
    ("unicode binders and ↦", "by\n  have h₁ : ∀ ε > (0 : ℝ), ε ≠ 0 := fun ε hε ↦ hε.ne'\n  exact h.symm"),
    ("anonymous constructor outside a config", "⟨hq, hp⟩"),
    ("big operators", "by\n  simp [Finset.sum_range_succ]"),
)
"""Genuine proofs that only look odd: the guard must accept each, and real Lean must check it."""

GENUINE_STATEMENTS: dict[str, str] = {
    "focusing dots": "theorem t : (2 : ℕ) + 2 = 4 ∧ ∀ x : ℝ, 0 ≤ x ^ 2 + 1 := by",
    "combinator <;>": "theorem t : (1 : ℕ) < 2 ∧ (2 : ℕ) < 3 := by",
    "Nat.rec term": "theorem t (a : ℕ) : 0 + a = a := by",
    "decide with a kernel config": "theorem t : (2 : ℕ) + 2 = 4 := by",
    "anonymous constructor outside a config": "theorem t (p q : Prop) (hp : p) (hq : q) : q ∧ p := by",
    "big operators": "theorem t : ∑ i ∈ Finset.range 3, i = 3 := by",
}
"""The statement of each genuine proof that is not about `STATEMENT`."""
