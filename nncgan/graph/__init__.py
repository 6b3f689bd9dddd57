"""Graph files: reading YAML with line numbers, and the validated graph model."""
