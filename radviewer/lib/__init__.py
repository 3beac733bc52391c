"""Shared helpers for every app. Imports no app at module level (import-linter checks)."""
