"""The front end: a parsed Spec elaborated into IR (blocks, repeats, names, shapes)."""
