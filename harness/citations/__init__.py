"""Vérifier les sources (HAS key 2.5): extract the references a generated text cites,
resolve them against catalogues, guideline registries and (optionally) online services,
and judge each: verified, mismatched, not found, unverifiable; outdated or not."""
