"""The bundled, offline text-to-SQL dataset and its deterministic generator."""
