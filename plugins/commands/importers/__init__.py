"""`collector import AGENT FILE`: another agent's config translated into ours (docs/migration.md)."""
