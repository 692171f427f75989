"""models/blocks."""
