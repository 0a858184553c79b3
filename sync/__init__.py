"""Runs, state, triggers and the CLI: moves, times and records."""
