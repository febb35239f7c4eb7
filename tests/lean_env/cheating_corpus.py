"""Cheating proofs and statements a prover (or a user) might submit, and genuine proofs that only look odd.

Each cheat is a realistic attempt to get a false or unchecked proof accepted. Text-level cheats must
be refused by the guard (`lean_env.guard`); cheats that only Lean can expose (a changed statement,
an axiom reached through the environment, a forged `#print axioms` answer) come with the messages
Lean would print and must be refused by `lean_env.verification.judge`.

The theorem every proof is for: `theorem t (a b : ℕ) (h : a = b) : b = a := by` with the miniF2F header.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lean_env.types import LeanMessage, Severity, VerifyStatus

HEADER = "import Mathlib\n\nset_option maxHeartbeats 0\n\nopen BigOperators Real Nat Topology Rat\n\n"
STATEMENT = "theorem t (a b : ℕ) (h : a = b) : b = a := by"


@dataclass(frozen=True)
class Cheat:
    """One cheating attempt.

    `kind`: `proof` and `tactic` go through the proof/tactic guard, `statement` through the statement
    guard, `judge` through `judge` with `messages` (what Lean prints about the check file) and,
    when set, `checked_text` (a whole file the cheater wrote instead of ours).
    `mentions`: a fragment the rejection reason must contain, so the right check is what caught it.
    """

    name: str
    kind: Literal["proof", "tactic", "statement", "judge"]
    text: str
    mentions: str = ""
    messages: tuple[LeanMessage, ...] = ()
    checked_text: str | None = None
    expect: VerifyStatus | None = None
    notes: str = field(default="", compare=False)


def _info(text: str, line: int = 0) -> LeanMessage:
    return LeanMessage(Severity.INFO, text, line=line)


_STANDARD = _info("'t' depends on axioms: [propext, Classical.choice, Quot.sound]", line=9)

CHEATS: tuple[Cheat, ...] = (
    # --- `sorry` in disguise -------------------------------------------------------------------
    Cheat("plain sorry after real work", "proof", "by\n  subst h\n  sorry", "sorry"),
    Cheat("admit", "proof", "by\n  intro\n  admit", "admit"),
    Cheat("stop closes the rest with sorry", "proof", "by\n  stop\n  exact h.symm", "stop"),
    Cheat("sorry in guillemets", "proof", "by exact «sorry»", "sorry"),
    Cheat("sorryAx called directly", "proof", "by exact sorryAx _ false", "sorryAx"),
    Cheat("sorry behind _root_", "proof", "by exact (_root_.sorryAx (b = a) true)", "sorryAx"),
    Cheat("sorry inside an interpolated string", "proof", 'by\n  have := s!"{(sorry : ℕ)}"\n  omega', "interpolated"),
    Cheat(
        "sorry in a name quotation",
        "proof",
        "by\n  run_tac Lean.Elab.Tactic.evalTactic (← `(tactic| sorry))",
        "run_tac",
    ),
    Cheat(
        "block comment that only a naive reader sees open",
        "proof",
        "by\n  simp -- /-\n  sorry -- -/",
        "sorry",
        notes="Lean ends a line comment at the newline, so the `/-` never opens and `sorry` is code",
    ),
    Cheat(
        "string that a regex comment-stripper would eat",
        "proof",
        'by\n  let s := "/-"\n  sorry\n  -- -/',
        "sorry",
    ),
    Cheat("unterminated comment swallowing #print axioms", "proof", "by\n  simp\n  /- the end", "never closed"),
    Cheat("stray comment closer", "proof", "by\n  exact h.symm -/", "-/"),
    # --- unicode tricks ---------------------------------------------------------------------------
    Cheat("Cyrillic look-alike sorry", "proof", "by\n  ѕоrry", "imitates `sorry`"),
    Cheat("fullwidth sorry", "proof", "by ｓｏｒｒｙ", "imitates `sorry`"),
    Cheat("mathematical bold sorry", "proof", "by exact 𝐬𝐨𝐫𝐫𝐲", "imitates `sorry`"),
    Cheat("zero-width space splitting sorry", "proof", "by\n  sor\u200bry", "U+200B"),
    Cheat("bidi override in a comment (Trojan Source)", "proof", "by\n  exact h.symm -- \u202e }⁦ sorry", "U+202E"),
    Cheat("line separator that Python splits but Lean does not", "proof", "by simp -- ok\u2028sorry", "U+2028"),
    Cheat("non-breaking space hiding a token boundary", "proof", "by\u00a0sorry", "U+00A0"),
    # --- trusting the compiler instead of the kernel ----------------------------------------------
    Cheat("native_decide", "proof", "by\n  subst h\n  native_decide", "native_decide"),
    Cheat("decide +native", "proof", "by decide +native", "native"),
    Cheat("Lean.ofReduceBool by name", "proof", "by exact absurd (Lean.ofReduceBool _ _ rfl) id", "ofReduceBool"),
    Cheat("ofReduceBool in guillemets", "proof", "by exact _root_.«Lean».«ofReduceBool» _ _ rfl", "ofReduceBool"),
    Cheat("implemented_by swap", "proof", "by simp\n\n@[implemented_by fake] def real : Bool := false", "@["),
    Cheat("unsafe cast", "proof", "by exact unsafe (unsafeCast h)", "unsafe"),
    # --- smuggled axioms and declarations ---------------------------------------------------------
    Cheat("axiom after the proof", "proof", "by exact cheat\n\naxiom cheat : ∀ a b : ℕ, b = a", "axiom"),
    Cheat("second theorem with the same name", "proof", "by simp\n\ntheorem t : True := trivial", "theorem"),
    Cheat("instance that proves False", "proof", "by simp\n\ninstance : Inhabited False := ⟨sorry⟩", "instance"),
    Cheat("local instance", "proof", "by\n  local instance : Decidable False := isFalse id\n  decide", "local"),
    Cheat("attribute change", "proof", "by\n  attribute [local simp] Nat.add_comm in\n  simp", "attribute"),
    Cheat("where clause declaring helpers", "proof", "aux where aux : b = a := h.symm", "where"),
    Cheat("mutual block", "proof", "by simp\nmutual\n  def f : ℕ := 0\nend", "mutual"),
    Cheat("example", "proof", "by simp\nexample : False := by decide", "example"),
    # --- commands, scopes, syntax -----------------------------------------------------------------
    Cheat(
        "#eval printing a fake axioms report",
        "proof",
        "by simp\n\n#eval IO.println \"'t' does not depend on any axioms\"",
        "#eval",
    ),
    Cheat("#exit before #print axioms", "proof", "by\n  simp\n#exit", "#exit"),
    Cheat("#print disguised by longest match", "proof", "by simp\n#printaxioms t", "#print"),
    Cheat("run_cmd", "proof", 'by simp\nrun_cmd Lean.logInfo "done"', "run_cmd"),
    Cheat("by_elab", "proof", "by_elab Lean.Elab.Term.elabTerm default none", "by_elab"),
    Cheat(
        "macro redefining #print axioms",
        "proof",
        'by simp\n\nmacro "#print" "axioms" x:ident : command => `(command| #check $x)',
        "macro",
    ),
    Cheat("syntax extension", "proof", 'by simp\nsyntax "cheat" : tactic', "syntax"),
    Cheat("elab rule", "proof", 'by simp\nelab "cheat" : tactic => pure ()', "elab"),
    Cheat("notation making False true", "proof", 'by simp\nnotation "False" => True', "notation"),
    Cheat("end then a new namespace", "proof", "by simp\nend\nnamespace Evil\ntheorem t : False := sorry", "end"),
    Cheat("section", "proof", "by simp\nsection\nvariable (x : ℕ)", "section"),
    Cheat("import mid-file", "proof", "by simp\nimport Mathlib.Tactic", "import"),
    Cheat("open without in", "proof", "by\n  simp\nopen Evil", "open"),
    # --- option escapes ---------------------------------------------------------------------------
    Cheat("skip the kernel", "proof", "by\n  set_option debug.skipKernelTC true in\n  exact h.symm", "debug"),
    Cheat("set_option as a command", "proof", "by simp\nset_option maxHeartbeats 0", "without `in`"),
    Cheat("option outside the allow-list", "proof", "by\n  set_option pp.all true in\n  simp", "pp.all"),
    Cheat("tactic: sorry", "tactic", "sorry", "sorry"),
    Cheat("tactic: native_decide after a focus dot", "tactic", "· native_decide", "native_decide"),
    Cheat("tactic: run a command", "tactic", "simp\n#eval 0", "#eval"),
    # --- statements submitted by users -----------------------------------------------------------
    Cheat("statement using sorry as its type", "statement", "theorem t : (sorry : Prop) := by", "sorry"),
    Cheat("statement carrying a proof", "statement", "theorem t : 1 + 1 = 2 := by norm_num", "after `:= by`"),
    Cheat(
        "two theorems in one statement",
        "statement",
        "theorem t : True := by trivial\ntheorem u (n : ℕ) : n = n := by",
        "more than one",
    ),
    Cheat("axiom before the statement", "statement", "axiom cheat : False\ntheorem t : 1 = 2 := by", "axiom"),
    Cheat("def instead of theorem", "statement", "def t : ℕ := by", "def"),
    Cheat("option prefix", "statement", "set_option maxHeartbeats 0 in\ntheorem t : 1 = 2 := by", "must start"),
    Cheat("comment swallowing the proof slot", "statement", "theorem t : 1 = 2 /- := by", "never closed"),
    Cheat("#eval in a statement", "statement", "#eval 0\ntheorem t : 1 = 1 := by", "#eval"),
    Cheat("no := at all", "statement", "theorem t : 1 = 2", "must end"),
    # --- cheats only Lean exposes: judged on Lean's messages ---------------------------------------
    Cheat(
        "statement changed in a whole-file submission",
        "judge",
        "by simp",
        checked_text=HEADER + "theorem t (a b : ℕ) (h : a = b) : b = b := by simp\n\n#print axioms t\n",
        messages=(_STANDARD,),
        expect=VerifyStatus.STATEMENT_CHANGED,
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
        "lemma proved by native_decide elsewhere",
        "judge",
        "by exact helper_by_native a b h",
        messages=(_info("'t' depends on axioms: [propext, Lean.ofReduceBool]", line=9),),
        expect=VerifyStatus.NONSTANDARD_AXIOMS,
        mentions="Lean.ofReduceBool",
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
        "forged second axioms report",
        "judge",
        "by exact h.symm",
        messages=(_info("'t' does not depend on any axioms", line=8), _info("'t' depends on axioms: [sorryAx]", 9)),
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
    Cheat(
        "guarded proof that reached judge without precheck",
        "judge",
        "by\n  native_decide",
        messages=(_STANDARD,),
        expect=VerifyStatus.GUARD_REJECTED,
        mentions="native_decide",
    ),
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
    ("Nat.rec term", "Nat.rec (motive := fun n => 0 + n = n) rfl (fun n ih => by rw [Nat.add_succ, ih]) a ▸ h.symm"),
    ("allowed option in tactic form", "by\n  set_option maxHeartbeats 400000 in\n  nlinarith [h]"),
    ("open ... in", "by\n  open Real in\n  exact h.symm"),
    ("open scoped ... in", "by\n  open scoped BigOperators in\n  simp [h]"),
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
    (
        "string and char literals",
        "by\n  have : \"a-/b\".length = 4 := by decide\n  have : '\"' ≠ 'x' := by decide\n  omega",
    ),
    ("finset cardinality notation", "by\n  have : #(∅ : Finset ℕ) = 0 := rfl\n  exact h.symm"),
    ("doc-style block comment", "by\n  /-! ## Step 1 -/\n  exact h.symm"),
    ("trailing comment without newline", "by exact h.symm -- done"),
    ("explicit universe-free @ application", "by exact @Eq.symm ℕ a b h"),
)
