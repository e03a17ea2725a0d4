"""The one pattern AOS ids match (agent ids, types, business keys), importable without loading any model."""

ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"  # URL-safe, lower case
