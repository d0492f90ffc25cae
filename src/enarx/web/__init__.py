"""Pieces every HTTP service of ours shares (Steward, Drawbridge, key broker)."""
