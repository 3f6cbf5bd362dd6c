"""Helpers that start and stop the real processes tests run against."""
