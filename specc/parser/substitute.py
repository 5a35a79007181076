"""`${...}` substitution over a located tree, with errors pointing into the string."""

from __future__ import annotations

import re

from specc.diagnostics import Diagnostics, Span
from specc.limits import Limits
from specc.parser.expr import ExprError, ExprLimits, has_expression, substitute
from specc.lang.located import FAILED, Entry, Map, Scalar, Seq, is_failed  # noqa: F401 (is_failed re-exported)


def expr_limits(limits: Limits) -> ExprLimits:
    return ExprLimits(max_length=limits.max_expr_length, max_depth=limits.max_expr_depth,
                      max_int_bits=limits.max_int_bits, max_string_length=limits.max_string_length)


FAILED_NAMES = " failed"  # scope key (not a name an expression can write) of params whose value failed
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def substitute_scalar(node: Scalar, scope: dict, diags: Diagnostics, limits: Limits) -> Scalar | None:
    """The scalar with its expressions evaluated, or None (after a diagnostic) when one fails."""
    if not (isinstance(node.value, str) and has_expression(node.value)):
        return node
    failed = scope.get(FAILED_NAMES)
    if failed:
        if failed & set(_IDENTIFIER.findall(node.value)):
            return None  # uses a param whose own error is already reported
        scope = {k: v for k, v in scope.items() if k != FAILED_NAMES}
    try:
        return Scalar(substitute(node.value, scope, expr_limits(limits)), node.span, node.quoted)
    except ExprError as exc:
        # Point at the failing character when the scalar sits on one line.
        column = node.span.column + exc.offset + (1 if node.quoted else 0)
        span = Span(node.span.path, node.span.line, column) if "\n" not in node.value else node.span
        diags.error(exc.code, exc.message, span, exc.hint)
        return None


def substitute_tree(node, scope: dict, diags: Diagnostics, limits: Limits, skip: frozenset = frozenset()):
    """Evaluate every expression below `node`; a failed one becomes a null (its error is in `diags`).

    `skip` names mapping keys whose subtrees are left as written (block bodies,
    which are evaluated at each use with the block's own parameters).
    """
    if isinstance(node, Scalar):
        result = substitute_scalar(node, scope, diags, limits)
        return result if result is not None else Scalar(FAILED, node.span)
    if isinstance(node, Seq):
        return Seq(tuple(substitute_tree(i, scope, diags, limits) for i in node.items), node.span)
    entries = {}
    for key, entry in node.entries.items():
        value = entry.value if key in skip else substitute_tree(entry.value, scope, diags, limits)
        entries[key] = Entry(key, entry.key_span, value)
    return Map(entries, node.span)
