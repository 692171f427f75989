"""models/encoders."""
