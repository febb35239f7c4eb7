/-!
Declarations a proof can reach only through the environment: a false axiom and a `sorry`'d lemma.
Whole-file verification must reject any proof that depends on them.
-/

axiom tiny_axiom : 1 = 2

theorem tiny_sorried : 2 = 3 := by
  sorry
