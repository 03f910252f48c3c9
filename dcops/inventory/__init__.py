"""The inventory: YAML documents, reconciling them with the database, export, and its queries."""
