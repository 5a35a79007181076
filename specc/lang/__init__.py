"""The spec language's neutral vocabulary: located YAML nodes and argument types, shared by the parser and the op registry."""
