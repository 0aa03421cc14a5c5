"""Where items are shown, as the `surface` fields across the contracts name them; the first is the default."""

SURFACES = ("home", "product", "cart", "push")
