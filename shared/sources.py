"""Names of the retrieval sources, as they appear in `source` fields across the contracts."""

COOCCURRENCE = "baseline-cooccurrence"
POPULAR = "popular"
