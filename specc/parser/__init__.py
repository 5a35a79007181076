"""YAML text -> located tree -> spec AST (extends, params, expressions, validation)."""
