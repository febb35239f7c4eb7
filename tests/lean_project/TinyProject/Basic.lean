/-!
Small theorems in core Lean. The contract suite proves them again through each backend.
-/

theorem add_zero_nat (n : Nat) : n + 0 = n := by
  simp

theorem two_add_two : 2 + 2 = 4 := by
  decide

theorem add_comm_nat (a b : Nat) : a + b = b + a := by
  omega

theorem and_swap_tiny (p q : Prop) (hp : p) (hq : q) : q ∧ p := by
  exact ⟨hq, hp⟩

theorem lt_succ_tiny (n : Nat) : n < n + 1 := by
  omega
