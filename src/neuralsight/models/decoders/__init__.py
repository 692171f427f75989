"""models/decoders."""
