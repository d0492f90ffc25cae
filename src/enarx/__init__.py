"""Enarx for Python."""
