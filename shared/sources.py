"""Names of the retrieval sources, as they appear in `source` fields across the contracts."""

GENERATOR = "candidate-gan"
ITEM_KNN = "item-knn"
POPULAR = "popular"
