"""The state store."""
