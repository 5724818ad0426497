"""Clinical term extraction (EN, FR): drugs, doses, routes, frequencies, negation,
laterality and near-homophones; the basis of the medical scorers (HAS key 2.6)."""
