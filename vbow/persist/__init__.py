"""Persistence: the versioned bundle format and the index schema."""
