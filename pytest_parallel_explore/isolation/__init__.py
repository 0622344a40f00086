"""Keeping trials apart and contained: processes, the bubblewrap sandbox, environments."""
