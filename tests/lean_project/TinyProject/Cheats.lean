import TinyProject.Axioms

/-!
Statements that can be "proved" only with the declarations of `TinyProject.Axioms`.
-/

theorem one_eq_two : 1 = 2 := by
  exact tiny_axiom

theorem two_eq_three : 2 = 3 := by
  exact tiny_sorried
