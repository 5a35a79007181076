"""`${expr}` expressions inside spec strings (SPEC.md, "Expressions").

Specs are untrusted input, so nothing here touches eval, compile or ast: a
hand-written tokenizer and recursive-descent parser build a small tuple AST and
a tree-walking evaluator computes it.  Every resource an expression could
exhaust (text length, nesting depth, integer size, string size) is bounded by
ExprLimits, and every failure is an ExprError with a diagnostic code:
E030 syntax, E031 unknown name or function, E032 evaluation.
"""
from __future__ import annotations

import functools

import difflib
import math
import operator
import re
from dataclasses import dataclass
from typing import Mapping, NamedTuple

__all__ = ["ExprError", "ExprLimits", "evaluate", "has_expression", "substitute"]


class ExprError(Exception):
    """One problem in one expression; `offset` is a 0-based character offset."""

    def __init__(self, code: str, message: str, offset: int = 0, hint: str | None = None):
        super().__init__(message)
        self.code, self.message, self.offset, self.hint = code, message, offset, hint

    def __repr__(self) -> str:
        return f"ExprError({self.code!r}, {self.message!r}, {self.offset}, {self.hint!r})"


@dataclass(frozen=True)
class ExprLimits:
    max_length: int = 1000          # characters of one expression
    max_depth: int = 64             # nesting depth of parentheses/operators/calls
    max_int_bits: int = 128         # largest bit_length() of any intermediate integer
    max_string_length: int = 10000  # length of an interpolated string result


FUNCTIONS = ("min", "max", "round")
_HINT = "an expression may use numbers, names, `+ - * / // % **`, parentheses, min(), max() and round()"
# ASCII only on purpose: \d and \s would accept Unicode digits and spaces.
_SPACE = re.compile(r"[ \t\r\n]*")
_TOKEN = re.compile(
    r"(?P<num>(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\*\*|//|[-+*/%(),])")  # longest operators first
_BINARY = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
           "//": operator.floordiv, "%": operator.mod, "**": operator.pow}


class _Token(NamedTuple):
    kind: str          # 'num', 'name', 'op' or 'end'
    text: str
    offset: int
    value: object = None


_KINDS = {bool: "boolean", str: "string", type(None): "null", list: "list", dict: "mapping"}


def _kind(value: object) -> str:  # a value's type in YAML words, for messages
    return _KINDS.get(type(value), type(value).__name__)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _too_large(offset: int, limits: ExprLimits, what: str = "result") -> ExprError:
    return ExprError("E032", f"{what} too large (more than {limits.max_int_bits} bits)", offset)


def _did_you_mean(name: str, candidates: list[str], list_few: bool = True) -> str | None:
    close = difflib.get_close_matches(name, candidates, n=1)
    if close:
        return f"did you mean `{close[0]}`?"
    return "available names: " + ", ".join(sorted(candidates)) if list_few and 0 < len(candidates) <= 8 else None


def _check(value, offset: int, limits: ExprLimits, what: str = "result"):
    """Refuse numbers that are too large or not finite; every number the evaluator sees or makes passes here."""
    if isinstance(value, complex):  # e.g. (-8) ** 0.5
        raise ExprError("E032", f"{what} is not a real number", offset)
    if isinstance(value, float) and not math.isfinite(value):
        raise ExprError("E032", f"{what} is not a finite number", offset)
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > limits.max_int_bits:
        raise _too_large(offset, limits, what)
    return value


def _tokenize(text: str, limits: ExprLimits) -> list[_Token]:
    tokens = []
    pos = _SPACE.match(text).end()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos] if text[pos].isprintable() else repr(text[pos])
            raise ExprError("E030", f"unexpected character `{ch}` in expression", pos, _HINT)
        value = _literal(m.group(), pos, limits) if m.lastgroup == "num" else None
        tokens.append(_Token(m.lastgroup, m.group(), pos, value))
        pos = _SPACE.match(text, m.end()).end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _literal(text: str, offset: int, limits: ExprLimits):
    if any(c in text for c in ".eE"):
        if not math.isfinite(value := float(text)):  # float('1e999') is inf
            raise ExprError("E032", "number too large", offset)
        return value
    # A d-digit number has more than 3*(d-1) bits: refuse long literals before int() converts them
    # (and stay under int()'s own 4300-digit limit, which would raise ValueError).
    if len(text.lstrip("0")) > min(limits.max_int_bits // 3 + 1, 4300):
        raise _too_large(offset, limits, "number")
    return _check(int(text), offset, limits, "number")


class _Parser:
    """Recursive descent over the grammar (lowest precedence first):

        expr  := term (('+' | '-') term)*
        term  := unary (('*' | '/' | '//' | '%') unary)*
        unary := ('+' | '-') unary | power
        power := atom ('**' unary)?           # right-associative, binds tighter than a unary minus on its left
        atom  := number | name | name '(' expr (',' expr)* ')' | '(' expr ')'

    AST nodes are tuples: ('num', off, value), ('name', off, name), ('neg'|'pos', off, x),
    ('pow', off, base, exponent), ('chain', first, [(op, off, operand), ...]) for a run of
    left-associative operators (a flat list, so `1+1+...+1` costs no recursion), and
    ('call', off, function, [args]).
    """

    def __init__(self, text: str, limits: ExprLimits):
        self.tokens, self.i, self.depth, self.limits = _tokenize(text, limits), 0, 0, limits

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def next(self) -> _Token:
        self.i += 1
        return self.tokens[self.i - 1]

    def at(self, *ops: str) -> bool:
        return self.peek().kind == "op" and self.peek().text in ops

    def expected(self, what: str, tok: _Token) -> ExprError:
        got = "the end of the expression" if tok.kind == "end" else f"`{tok.text}`"
        return ExprError("E030", f"expected {what}, got {got}", tok.offset)

    def parse(self):
        if self.peek().kind == "end":
            raise ExprError("E030", "empty expression", self.peek().offset)
        node = self.expr()
        if self.peek().kind != "end":
            raise self.expected("an operator or the end of the expression", self.peek())
        return node

    def expr(self):
        return self.chain(self.term, "+", "-")

    def term(self):
        return self.chain(self.unary, "*", "/", "//", "%")

    def chain(self, operand, *ops: str):
        first, rest = operand(), []
        while self.at(*ops):
            tok = self.next()
            rest.append((tok.text, tok.offset, operand()))
        return ("chain", first, rest) if rest else first

    def unary(self):
        # Every recursive path (parentheses, call arguments, unary signs, `**` exponents) passes through
        # here, so this one counter bounds the Python recursion of both the parser and the evaluator.
        tok = self.peek()
        self.depth += 1
        if self.depth > self.limits.max_depth:
            raise ExprError("E032", f"expression nested too deeply (limit {self.limits.max_depth} levels)", tok.offset)
        if self.at("+", "-"):
            self.next()
            node = ("neg" if tok.text == "-" else "pos", tok.offset, self.unary())
        else:
            node = self.atom()
            if self.at("**"):
                node = ("pow", self.next().offset, node, self.unary())
        self.depth -= 1
        return node

    def atom(self):
        tok = self.next()
        if tok.kind == "num":
            return ("num", tok.offset, tok.value)
        if tok.kind == "name" and self.at("("):
            return self.call(tok)
        if tok.kind == "name":
            return ("name", tok.offset, tok.text)
        if tok.kind == "op" and tok.text == "(":
            node = self.expr()
            if not self.at(")"):
                raise self.expected("`)`", self.peek())
            self.next()
            return node
        raise self.expected("a number, a name or `(`", tok)

    def call(self, name: _Token):
        if name.text not in FUNCTIONS:  # names are never callable: only these three functions exist
            raise ExprError("E031", f"unknown function `{name.text}`; available: {', '.join(FUNCTIONS)}",
                            name.offset, _did_you_mean(name.text, list(FUNCTIONS), list_few=False))
        self.next()  # the '('
        args = [] if self.at(")") else [self.expr()]
        while self.at(","):
            self.next()
            args.append(self.expr())
        if not self.at(")"):
            raise self.expected("`,` or `)`", self.peek())
        self.next()
        if not args or (name.text == "round" and len(args) > 2):
            wanted = "1 or 2 arguments" if name.text == "round" else "at least 1 argument"
            raise ExprError("E030", f"`{name.text}` takes {wanted}, got {len(args)}", name.offset)
        return ("call", name.offset, name.text, args)


class _Evaluator:
    def __init__(self, names: Mapping[str, object], limits: ExprLimits):
        self.names, self.limits = names, limits

    def compute(self, node):
        tag = node[0]
        if tag == "num":
            return node[2]
        if tag == "name":
            return self.lookup(node[1], node[2])
        if tag == "chain":
            value = self.compute(node[1])
            for op, offset, operand in node[2]:
                value = self.binary(op, value, self.compute(operand), offset)
            return value
        if tag == "pow":
            return self.binary("**", self.compute(node[2]), self.compute(node[3]), node[1])
        if tag in ("neg", "pos"):
            value = self.compute(node[2])
            if not _is_number(value):
                raise ExprError("E032", f"operator `{'-' if tag == 'neg' else '+'}` needs a number, got {_kind(value)}", node[1])
            return -value if tag == "neg" else +value
        return self.call(node[1], node[2], [self.compute(arg) for arg in node[3]])

    def lookup(self, offset: int, name: str):
        if name not in self.names:
            raise ExprError("E031", f"unknown name `{name}` in expression", offset,
                            _did_you_mean(name, [str(n) for n in self.names]))
        return _check(self.names[name], offset, self.limits, f"value of `{name}`")

    def binary(self, op: str, a, b, offset: int):
        # Only numbers: this also rules out string repetition ("x" * 10**9) and bool arithmetic.
        for value in (a, b):
            if not _is_number(value):
                raise ExprError("E032", f"operator `{op}` needs numbers, got {_kind(value)}", offset)
        # Estimate an int power before computing it: |a| >= 2 gives at least (bits(a)-1)*b+1 bits.
        if op == "**" and isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1 \
                and (a.bit_length() - 1) * b >= self.limits.max_int_bits:
            raise _too_large(offset, self.limits)
        try:
            result = _BINARY[op](a, b)  # `+ - *` grow at most to twice the bit limit before _check
        except ZeroDivisionError:  # also 0 ** -1 and 0.0 ** -1
            raise ExprError("E032", "division by zero", offset,
                            "the right-hand side of this operator evaluates to 0") from None
        except OverflowError:  # float ** float, or an int too large to convert to float
            raise ExprError("E032", "result too large", offset) from None
        return _check(result, offset, self.limits)

    def call(self, offset: int, name: str, args: list):
        for value in args:
            if not _is_number(value):
                raise ExprError("E032", f"`{name}` needs numbers, got {_kind(value)}", offset)
        if name in ("min", "max"):
            return min(args) if name == "min" else max(args)
        if len(args) == 1:
            return _check(round(args[0]), offset, self.limits)  # round(1e300) is a 997-bit int
        digits = args[1]
        if not isinstance(digits, int) or abs(digits) > 20:
            raise ExprError("E032", f"`round` needs a whole number of digits between -20 and 20, got {digits!r}", offset)
        return _check(round(args[0], digits), offset, self.limits)


@functools.lru_cache(maxsize=4096)
def _parse(text: str, limits: ExprLimits):
    # A block's expressions are evaluated at every use: parse each text once (the AST is immutable tuples).
    return _Parser(text, limits).parse()


def _free_names(node) -> frozenset:
    tag = node[0]
    if tag == "num":
        return frozenset()
    if tag == "name":
        return frozenset((node[2],))
    if tag == "chain":
        return _free_names(node[1]).union(*(_free_names(operand) for _, _, operand in node[2]))
    if tag == "pow":
        return _free_names(node[2]) | _free_names(node[3])
    if tag in ("neg", "pos"):
        return _free_names(node[2])
    return frozenset().union(*(_free_names(arg) for arg in node[3]))


@functools.lru_cache(maxsize=4096)
def _parse_with_names(text: str, limits: ExprLimits):
    tree = _parse(text, limits)
    try:
        return tree, tuple(sorted(_free_names(tree)))
    except RecursionError:
        return tree, None


_RESULTS: dict = {}  # (text, limits, the values of its names) -> result: a block used 4,000 times evaluates once


def evaluate(text: str, names: Mapping[str, object], limits: ExprLimits = ExprLimits()) -> int | float | str | bool:
    """Evaluate one expression (the text between ${ and })."""
    if len(text) > limits.max_length:
        raise ExprError("E032", f"expression too long ({len(text)} characters, limit {limits.max_length})", 0)
    try:
        tree, free = _parse_with_names(text, limits)
        key = None
        if free is not None and all(n in names for n in free):
            key = (text, limits, tuple((type(names[n]), names[n]) for n in free))
            try:
                if key in _RESULTS:
                    return _RESULTS[key]
            except TypeError:  # an unhashable value: evaluate without the memo
                key = None
        result = _Evaluator(names, limits).compute(tree)
    except RecursionError:  # only reachable with a max_depth far above the default
        raise ExprError("E032", "expression nested too deeply", 0) from None
    if key is not None:
        if len(_RESULTS) > 16384:
            _RESULTS.clear()
        _RESULTS[key] = result
    return result


def has_expression(value: str) -> bool:
    """True when the string contains a `${` (an escaped `$${` counts: substitute() unescapes it)."""
    return "${" in value


def substitute(value: str, names: Mapping[str, object], limits: ExprLimits = ExprLimits()) -> object:
    """Replace each `${...}` in `value`; a value that is exactly one `${...}` keeps its type.

    `$${` is a literal `${`.  Error offsets are relative to the start of `value`.
    """
    pieces: list[str] = []
    size = i = 0

    def emit(offset: int, *texts: str) -> None:  # offset: where the text being added comes from
        nonlocal size
        pieces.extend(texts)
        size += sum(map(len, texts))
        if size > limits.max_string_length:
            raise ExprError("E032", f"string too long after substitution (limit {limits.max_string_length} characters)", offset)

    while (start := value.find("${", i)) >= 0:
        if start > i and value[start - 1] == "$":  # `$${`: escape for a literal `${`
            emit(i, value[i:start - 1], "${")
            i = start + 2
            continue
        end = value.find("}", start + 2)  # the grammar has no braces, so the first `}` closes it
        if end < 0:
            raise ExprError("E030", "unterminated `${`: missing `}`", start)
        try:
            result = evaluate(value[start + 2:end], names, limits)
        except ExprError as e:
            raise ExprError(e.code, e.message, e.offset + start + 2, e.hint) from None
        if start == 0 and end == len(value) - 1:
            return result  # the whole value: keep int/float/str/bool
        try:
            text = repr(result) if isinstance(result, float) else str(result)
        except ValueError:  # an int over Python's 4300-digit str() limit (only with a raised max_int_bits)
            raise ExprError("E032", "result too large to write into a string", start) from None
        emit(start, value[i:start], text)
        i = end + 1
    emit(i, value[i:])
    return "".join(pieces)
