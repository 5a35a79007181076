"""Tests for specc.parser.expr: `${...}` expressions in spec strings.

Expected values in the tables are written as Python expressions, so Python
itself (at import time, no eval) computes the reference result for the same
text, type included.
"""
import builtins
import contextlib
import dataclasses
import math
import operator
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from specc.parser import expr as expr_module
from specc.parser.expr import ExprError, ExprLimits, evaluate, has_expression, substitute

NAMES = {"c": 16, "width": 32, "n": -3, "x": 0.5, "act": "relu", "flag": True, "off": False}


def error_of(text, names=NAMES, limits=ExprLimits(), fn=evaluate):
    with pytest.raises(ExprError) as info:
        fn(text, names, limits)
    return info.value


# ---------------------------------------------------------------- values

VALUES = [
    # literals
    ("3", 3), ("0", 0), ("0.5", 0.5), (".5", .5), ("5.", 5.), ("1e-3", 1e-3), ("1E3", 1E3),
    ("1e+2", 1e+2), ("1.5e2", 1.5e2), ("007", 7), ("  1 +\t2\n", 3), ("\r\n42\n", 42),
    # precedence
    ("1+2*3", 1 + 2 * 3), ("(1+2)*3", (1 + 2) * 3), ("1+2%3", 1 + 2 % 3), ("2*3%4", 2 * 3 % 4),
    ("10-2**2*3", 10 - 2 ** 2 * 3), ("2*-3", 2 * -3), ("1 - -1", 1 - -1), ("-(3+4)*2", -(3 + 4) * 2),
    ("2+3//2", 2 + 3 // 2), ("1+2*3**2", 1 + 2 * 3 ** 2), ("2*3**2", 2 * 3 ** 2),
    # unary minus and **
    ("-2**2", -2 ** 2), ("(-2)**2", (-2) ** 2), ("2**-1", 2 ** -1), ("-2**-2", -2 ** -2),
    ("--3", - -3), ("-+-3", -+-3), ("+3", +3), ("- 2 ** 2", -2 ** 2), ("2**-2**2", 2 ** -2 ** 2),
    # associativity
    ("10-4-3", 10 - 4 - 3), ("100/10/5", 100 / 10 / 5), ("2*3/4", 2 * 3 / 4), ("100//7//2", 100 // 7 // 2),
    ("100%7%4", 100 % 7 % 4), ("2**3**2", 2 ** 3 ** 2), ("(2**3)**2", (2 ** 3) ** 2), ("2**2**-1", 2 ** 2 ** -1),
    # Python semantics of / // % **
    ("4/2", 4 / 2), ("1/255", 1 / 255), ("7//2", 7 // 2), ("-7//2", -7 // 2), ("7//-2", 7 // -2),
    ("7%3", 7 % 3), ("-7%3", -7 % 3), ("7%-3", 7 % -3), ("7.5//2", 7.5 // 2), ("7.5%2", 7.5 % 2),
    ("2**0.5", 2 ** 0.5), ("0**0", 0 ** 0), ("10**-400", 10 ** -400), ("2**127", 2 ** 127),
    ("-2**127", -2 ** 127), ("(-1)**(10**30)", 1), ("1**(2**127)", 1), ("0**(2**127)", 0),
    ("0.5**(2**127)", 0.0), ("4**0.5", 4 ** 0.5),
    # names keep their type
    ("c", 16), ("c * 2", 32), ("c / 2", 8.0), ("c // 3", 5), ("x * 4", 2.0), ("-c", -16),
    ("n**2", 9), ("n**3", -27), ("width * 4 + c", 144), ("act", "relu"), ("(act)", "relu"),
    ("((flag))", True), ("off", False),
    # functions
    ("min(3, 1, 2)", 1), ("max(3, 1.5)", 3), ("min(1, 1.0)", min(1, 1.0)), ("min(5)", 5),
    ("max(c, width) * 2", 64), ("min(min(1,2),max(3,4))", 1), ("max(-1, -c)", -1), ("min(x, 1)", 0.5),
    ("round(2.5)", round(2.5)), ("round(3.5)", round(3.5)), ("round(-2.5)", round(-2.5)), ("round(7)", 7),
    ("round(x)", round(0.5)), ("round(2.675, 2)", round(2.675, 2)), ("round(1234, -2)", round(1234, -2)),
    ("round(1.5, 0)", round(1.5, 0)), ("round(1/3, 20)", round(1 / 3, 20)), ("round(c / 3)", round(16 / 3)),
    ("round(12345, -20)", round(12345, -20)), ("round(1e300, -20)", round(1e300, -20)),
]


@pytest.mark.parametrize("text, expected", VALUES)
def test_values(text, expected):
    result = evaluate(text, NAMES)
    assert result == expected
    assert type(result) is type(expected), (text, result)


# ---------------------------------------------------------------- errors

ERRORS = [
    # E030: syntax, offset at the offending token
    ("", "E030", 0, "empty expression"),
    ("   ", "E030", 3, "empty expression"),
    ("1 +", "E030", 3, "expected a number, a name or `(`, got the end of the expression"),
    ("(1+2", "E030", 4, "expected `)`, got the end of the expression"),
    ("1+2)", "E030", 3, "expected an operator or the end of the expression, got `)`"),
    ("2(3)", "E030", 1, "got `(`"),
    ("* 3", "E030", 0, "expected a number, a name or `(`, got `*`"),
    ("1 2", "E030", 2, "got `2`"),
    ("()", "E030", 1, "got `)`"),
    ("1..2", "E030", 2, "got `.2`"),
    ("1e", "E030", 1, "got `e`"),
    ("1_000", "E030", 1, "got `_000`"),
    ("3!", "E030", 1, "unexpected character `!`"),
    ("a.b", "E030", 1, "unexpected character `.`"),
    ("c[0]", "E030", 1, "unexpected character `[`"),
    ("'x'", "E030", 0, "unexpected character `'`"),
    ("1 < 2", "E030", 2, "unexpected character `<`"),
    ("1 << 2", "E030", 2, "unexpected character `<`"),
    ("~1", "E030", 0, "unexpected character `~`"),
    ("c if flag else 1", "E030", 2, "got `if`"),
    ("\u0663", "E030", 0, "unexpected character"),          # ARABIC-INDIC DIGIT THREE: not a number here
    ("1\u00a0+ 1", "E030", 1, "unexpected character"),      # no-break space is not whitespace here
    ("c\x00", "E030", 1, "unexpected character `'\\x00'`"),
    ("${c}", "E030", 0, "unexpected character `$`"),
    ("min()", "E030", 0, "`min` takes at least 1 argument, got 0"),
    ("max()", "E030", 0, "`max` takes at least 1 argument, got 0"),
    ("round()", "E030", 0, "`round` takes 1 or 2 arguments, got 0"),
    ("1 + round(1, 2, 3)", "E030", 4, "`round` takes 1 or 2 arguments, got 3"),
    ("min(1,)", "E030", 6, "expected a number, a name or `(`, got `)`"),
    ("min(1 2)", "E030", 6, "expected `,` or `)`, got `2`"),
    ("max(", "E030", 4, "got the end of the expression"),
    # E031: unknown names and functions
    ("foo", "E031", 0, "unknown name `foo` in expression"),
    ("1 + wdith", "E031", 4, "unknown name `wdith` in expression"),
    ("abs(1)", "E031", 0, "unknown function `abs`; available: min, max, round"),
    ("2 * c(2)", "E031", 4, "unknown function `c`"),               # names are never callable
    ("min", "E031", 0, "unknown name `min`"),                       # functions are not values
    # E032: evaluation
    ("1/0", "E032", 1, "division by zero"),
    ("1//0", "E032", 1, "division by zero"),
    ("1%0", "E032", 1, "division by zero"),
    ("1.0/0.0", "E032", 3, "division by zero"),
    ("5 % 0.0", "E032", 2, "division by zero"),
    ("0**-1", "E032", 1, "division by zero"),
    ("0.0**-1", "E032", 3, "division by zero"),
    ("c / (c - 16)", "E032", 2, "division by zero"),
    ("act * 2", "E032", 4, "operator `*` needs numbers, got string"),
    ("2 * act", "E032", 2, "operator `*` needs numbers, got string"),
    ("act + act", "E032", 4, "operator `+` needs numbers, got string"),
    ("act ** 2", "E032", 4, "operator `**` needs numbers, got string"),
    ("flag + 1", "E032", 5, "operator `+` needs numbers, got boolean"),
    ("1 - off", "E032", 2, "operator `-` needs numbers, got boolean"),
    ("-act", "E032", 0, "operator `-` needs a number, got string"),
    ("+flag", "E032", 0, "operator `+` needs a number, got boolean"),
    ("min(act)", "E032", 0, "`min` needs numbers, got string"),
    ("max(1, flag)", "E032", 0, "`max` needs numbers, got boolean"),
    ("round(flag)", "E032", 0, "`round` needs numbers, got boolean"),
    ("round(1, flag)", "E032", 0, "`round` needs numbers, got boolean"),
    ("round(2.5, 1.0)", "E032", 0, "whole number of digits between -20 and 20, got 1.0"),
    ("round(2.5, 21)", "E032", 0, "between -20 and 20, got 21"),
    ("round(2.5, -21)", "E032", 0, "between -20 and 20, got -21"),
    ("round(2, 10**30)", "E032", 0, "between -20 and 20"),
    ("round(1e300)", "E032", 0, "result too large (more than 128 bits)"),
    ("2**128", "E032", 1, "result too large (more than 128 bits)"),
    ("(-2)**129", "E032", 4, "result too large"),
    ("2**64*2**64", "E032", 5, "result too large"),
    ("*".join(["2**64"] * 10), "E032", 5, "result too large"),
    ("2**127+2**127", "E032", 6, "result too large"),
    ("-2**127-2**127", "E032", 7, "result too large"),
    ("3**81", "E032", 1, "result too large"),                       # 129 bits, computed then refused
    ("9**9**9**9", "E032", 4, "result too large"),
    ("10**10**10", "E032", 2, "result too large"),
    ("2**(2**127)", "E032", 1, "result too large"),
    ("10.0**400", "E032", 4, "result too large"),
    ("2**1e10", "E032", 1, "result too large"),
    ("2.0**(2**127)", "E032", 3, "result too large"),
    ("1e308*10", "E032", 5, "result is not a finite number"),
    ("1e308+1e308", "E032", 5, "result is not a finite number"),
    ("1e308/1e-308", "E032", 5, "result is not a finite number"),
    ("1e999", "E032", 0, "number too large"),
    ("1 + 1" + "0" * 39, "E032", 4, "number too large (more than 128 bits)"),   # 10**39: 130 bits
    ("9" * 900, "E032", 0, "number too large"),                                # refused before int()
    ("(-8)**(1/3)", "E032", 4, "result is not a real number"),
    ("n ** 0.5", "E032", 2, "result is not a real number"),
]


@pytest.mark.parametrize("text, code, offset, message", ERRORS)
def test_errors(text, code, offset, message):
    error = error_of(text)
    assert (error.code, error.offset) == (code, offset), (error.message, error.offset)
    assert message in error.message


def test_error_attributes():
    error = ExprError("E031", "unknown name `a` in expression", 3, "did you mean `b`?")
    assert (error.code, error.message, error.offset, error.hint) == ("E031", "unknown name `a` in expression", 3, "did you mean `b`?")
    assert str(error) == "unknown name `a` in expression"
    assert ExprError("E030", "m").offset == 0 and ExprError("E030", "m").hint is None
    assert isinstance(error, Exception)


def test_limits_are_frozen_with_documented_defaults():
    limits = ExprLimits()
    assert (limits.max_length, limits.max_depth, limits.max_int_bits, limits.max_string_length) == (1000, 64, 128, 10000)
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.max_depth = 10 ** 6


@pytest.mark.parametrize("text, names, hint", [
    ("wdith", NAMES, "did you mean `width`?"),
    ("flags", NAMES, "did you mean `flag`?"),
    ("zzz", {"a": 1, "b": 2}, "available names: a, b"),
    ("zzz", {}, None),
    ("zzz", {f"name{i}": i for i in range(20)}, None),
    ("mx(1)", NAMES, "did you mean `max`?"),
    ("rnd(1)", NAMES, "did you mean `round`?"),
    ("__import__(c)", NAMES, None),
])
def test_unknown_name_hints(text, names, hint):
    error = error_of(text, names)
    assert error.code == "E031" and error.hint == hint


def test_syntax_errors_hint_what_is_allowed():
    assert "min(), max() and round()" in error_of("a.b").hint


@pytest.mark.parametrize("names", [{"v": 2 ** 200}, {"v": float("nan")}, {"v": float("inf")}, {"v": -2 ** 129}])
def test_names_with_unusable_numbers_are_refused(names):
    error = error_of("1 + v", names)
    assert (error.code, error.offset) == ("E032", 4) and "value of `v`" in error.message


@pytest.mark.parametrize("value, kind", [(None, "null"), ([1, 2], "list"), ({"a": 1}, "mapping"), ("s", "string")])
def test_non_numbers_in_arithmetic_are_named(value, kind):
    assert error_of("v * 2", {"v": value}).message == f"operator `*` needs numbers, got {kind}"


def test_custom_int_bits_limit():
    assert evaluate("2**200", {}, ExprLimits(max_int_bits=256)) == 2 ** 200
    assert error_of("2**20", {}, ExprLimits(max_int_bits=16)).code == "E032"


def test_huge_int_bits_limit_never_leaks_value_error():
    limits = ExprLimits(max_length=10 ** 6, max_int_bits=100_000)
    assert evaluate("2**50000", {}, limits) == 2 ** 50000
    assert error_of("9" * 5000, {}, limits).code == "E032"               # int() refuses > 4300 digits
    assert error_of("x${2**50000}", {}, limits, fn=substitute).code == "E032"  # so does str()


def test_recursion_error_never_escapes_with_a_huge_depth_limit():
    limits = ExprLimits(max_length=10 ** 6, max_depth=10 ** 6)
    assert evaluate("-" * 100 + "1", {}, limits) == 1
    error, seconds = timed(evaluate, "(" * 100_000 + "1" + ")" * 100_000, {}, limits)
    assert isinstance(error, ExprError) and error.code == "E032" and seconds < 3.0


# ---------------------------------------------------------------- injection attempts

INJECTIONS = [
    "__import__('os').system('x')", "__import__(\"os\").system(\"touch /tmp/pwned\")", "open('x')",
    "open('/etc/passwd').read()", "().__class__", "().__class__.__bases__[0].__subclasses__()",
    "lambda: 0", "(lambda: 0)()", "f'{1}'", 'f"{c}"', "c.__class__", "c.real", "exec('1')", "eval('1')",
    "compile('1', 'x', 'eval')", "globals()", "locals()", "vars()", "[c for c in ()]", "c; import os",
    "import os", "__builtins__", "__import__", "os.system", "getattr(c, 'x')", "b'x'", "{}", "[]",
    "`c`", "c@c", "c and c", "not c", "c == c", "(c := 1)", "c if c else c", "\\x41", "print(c)",
    "type(c)", "breakpoint()", "__import__(os)", "setattr(c, c, c)", "c(c)", "min.__call__(1)",
    "min(1).x", "'' * 10**9", "act * 10**9",
]


@contextlib.contextmanager
def no_dynamic_code():
    """Make eval/exec/compile/__import__/open fail, only while the body runs."""
    calls = []

    def boom(*args, **kwargs):
        calls.append(args)
        raise AssertionError("dynamic code execution attempted")
    saved = {name: getattr(builtins, name) for name in ("eval", "exec", "compile", "__import__", "open")}
    try:
        for name in saved:
            setattr(builtins, name, boom)
        yield calls
    finally:
        for name, fn in saved.items():
            setattr(builtins, name, fn)


@pytest.mark.parametrize("text", INJECTIONS)
def test_injection_attempts_are_refused(text):
    with no_dynamic_code() as calls:
        try:
            evaluate(text, NAMES)
            outcome = None
        except ExprError as error:
            outcome = error
    assert calls == []
    assert isinstance(outcome, ExprError), outcome
    assert outcome.code in ("E030", "E031") or "needs numbers" in outcome.message


def test_module_source_uses_no_dynamic_evaluation():
    source = Path(expr_module.__file__).read_text()
    assert not re.search(r"\b(eval|exec|literal_eval|__import__)\s*\(", source)
    assert not re.search(r"(?<!re\.)\bcompile\s*\(", source)
    assert not re.search(r"^\s*(import ast|from ast)", source, re.M)


# ---------------------------------------------------------------- resource limits

BIG = ExprLimits(max_length=10 ** 6)


def timed(fn, *args):
    start = time.perf_counter()
    try:
        return fn(*args), time.perf_counter() - start
    except ExprError as error:
        return error, time.perf_counter() - start


def test_too_long_expression():
    error = error_of("1+" * 600 + "1")
    assert (error.code, error.offset, error.message) == ("E032", 0, "expression too long (1201 characters, limit 1000)")
    assert evaluate("1+" * 499 + "1", {}) == 500  # 999 characters


@pytest.mark.parametrize("text", [
    "(" * 100_000 + "1" + ")" * 100_000,
    "-" * 100_000 + "1",
    "2**" * 100_000 + "2",
    "min(" * 100_000 + "1" + ")" * 100_000,
    "(" * 100_000,
    "round(" * 50_000 + "-(" * 50_000,
])
def test_deep_nesting_is_refused_quickly_without_recursion_error(text):
    for limits in (ExprLimits(), BIG):
        error, seconds = timed(evaluate, text, {}, limits)
        assert isinstance(error, ExprError) and error.code == "E032", error
        assert seconds < 3.0
    assert "nested too deeply (limit 64 levels)" in error_of(text, {}, BIG).message


def test_depth_limit_boundary():
    assert evaluate("(" * 63 + "1" + ")" * 63, {}) == 1
    error = error_of("(" * 64 + "1" + ")" * 64, {})
    assert (error.code, error.offset) == ("E032", 64)
    assert evaluate("-" * 63 + "1", {}) == -1  # each sign is a level, and so is the operand
    assert error_of("-" * 64 + "1", {}).offset == 64


def test_long_flat_chains_need_no_nesting():
    (value, seconds) = timed(evaluate, "1+" * 100_000 + "1", {}, BIG)
    assert value == 100_001 and seconds < 3.0
    assert evaluate("*".join(["c"] * 30) + "/ c" * 29, NAMES) == 16.0


@pytest.mark.parametrize("text", ["9**9**9**9", "10**10**10**10", "2**(2**127)", "(2**127)**(2**127)",
                                  "(2**64*2**63)**2", "99999**99999", "2.5**(2**127)", "1.0000001**(2**120)"])
def test_huge_powers_are_refused_quickly(text):
    error, seconds = timed(evaluate, text, {})
    assert isinstance(error, ExprError) and error.code == "E032" and seconds < 0.1


# ---------------------------------------------------------------- substitute

@pytest.mark.parametrize("value, expected", [
    ("${c}", 16), ("${c * 2}", 32), ("${ c }", 16), ("${1/255}", 1 / 255), ("${4/2}", 2.0),
    ("${act}", "relu"), ("${flag}", True), ("${x}", 0.5),
    (" ${c}", " 16"), ("${c} ", "16 "), ("conv_${c}", "conv_16"), ("${c}${c}", "1616"),
    ("${c}x${x}", "16x0.5"), ("v${1/3}", "v0.3333333333333333"), ("lr=${1e-5}", "lr=1e-05"),
    ("${4/2}!", "2.0!"), ("${flag}!", "True!"), ("${act}_${c}", "relu_16"), ("${2**127}.", f"{2 ** 127}."),
    ("$${c}", "${c}"), ("a $${c} ${c}", "a ${c} 16"), ("${c}$${c}", "16${c}"), ("$${c}$${c}", "${c}${c}"),
    ("no expression", "no expression"), ("$c {c} $ {c}", "$c {c} $ {c}"), ("}${c}{", "}16{"),
    ("${c}}", "16}"), ("", ""), ("cost: $5", "cost: $5"),
])
def test_substitute(value, expected):
    result = substitute(value, NAMES)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize("value, code, offset, message", [
    ("${c", "E030", 0, "unterminated `${`: missing `}`"),
    ("ab ${c", "E030", 3, "unterminated"),
    ("${c} ${", "E030", 5, "unterminated"),
    ("x ${1/0}", "E032", 5, "division by zero"),
    ("${wdith}", "E031", 2, "unknown name `wdith`"),
    ("pre ${c} ${ wdith }", "E031", 12, "unknown name `wdith`"),
    ("${}", "E030", 2, "empty expression"),
    ("a${ 1 + }b", "E030", 8, "expected a number"),
    ("${${c}}", "E030", 2, "unexpected character `$`"),
    ("${act * 3}", "E032", 6, "operator `*` needs numbers, got string"),
    ("$${c} ${1 +* 2}", "E030", 11, "got `*`"),
])
def test_substitute_errors(value, code, offset, message):
    error = error_of(value, fn=substitute)
    assert (error.code, error.offset) == (code, offset), error
    assert message in error.message


def test_substitute_string_limit():
    names = {"s": "x" * 6000}
    assert substitute("${s}", names) == "x" * 6000          # whole value: nothing interpolated
    assert substitute("${s}-", names) == "x" * 6000 + "-"
    error = error_of("${s}${s}", names, fn=substitute)
    assert error.code == "E032" and error.offset == 4 and "string too long" in error.message
    assert substitute("a${c}", NAMES, ExprLimits(max_string_length=3)) == "a16"
    assert error_of("ab${c}", NAMES, ExprLimits(max_string_length=3), fn=substitute).code == "E032"


def test_substitute_expression_length_limit_is_per_expression():
    error = error_of("ok ${" + "1+" * 600 + "1}", fn=substitute)
    assert (error.code, error.offset) == ("E032", 5)


@pytest.mark.parametrize("value, expected", [
    ("${a}", True), ("$${a}", True), ("x${", True), ("$a", False), ("{a}", False), ("$ {a}", False), ("", False),
])
def test_has_expression(value, expected):
    assert has_expression(value) is expected


# ---------------------------------------------------------------- properties

FAST = settings(max_examples=300, deadline=500, suppress_health_check=[HealthCheck.too_slow])


def assert_value_or_expr_error(fn, text):
    try:
        result = fn(text, NAMES)
    except ExprError as error:
        assert error.code in ("E030", "E031", "E032")
        assert 0 <= error.offset <= len(text)
        assert isinstance(error.message, str) and error.message
    else:
        assert isinstance(result, (int, float, str, bool))


@FAST
@given(st.text())
def test_arbitrary_text_gives_a_value_or_expr_error(text):
    assert_value_or_expr_error(evaluate, text)


TOKENS = ["0", "1", "2", "9", "0.5", ".5", "1e3", "1e400", "99999999", "c", "x", "n", "act", "flag", "zz",
          "+", "-", "*", "/", "//", "%", "**", "(", ")", ",", "min(", "max(", "round(", " ", ".", "e"]


@FAST
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join))
def test_token_soup_gives_a_value_or_expr_error(text):
    assert_value_or_expr_error(evaluate, text)


@FAST
@given(st.lists(st.sampled_from(TOKENS + ["${", "}", "$${", "$", "{", "ab"]), max_size=30).map("".join))
def test_substitute_gives_a_value_or_expr_error(value):
    assert_value_or_expr_error(substitute, value)


# A reference model: random expression trees, rendered fully parenthesised,
# computed with Python's operators and the same limits.

OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
       "//": operator.floordiv, "%": operator.mod, "**": operator.pow}
LEAVES = st.one_of(st.integers(-20, 20), st.floats(-100, 100, allow_nan=False, allow_infinity=False),
                   st.sampled_from(["c", "x", "n"]))
TREES = st.recursive(LEAVES, lambda kids: st.one_of(
    st.tuples(st.sampled_from(sorted(OPS)), kids, kids),
    st.tuples(st.just("neg"), kids),
    st.tuples(st.sampled_from(["min", "max"]), st.lists(kids, min_size=1, max_size=3)),
    st.tuples(st.just("round"), kids),
), max_leaves=12)


class Refused(Exception):
    pass


def render(tree):
    if isinstance(tree, (int, float)):
        return f"({tree!r})" if str(tree).startswith("-") else repr(tree)
    if isinstance(tree, str):
        return tree
    if tree[0] == "neg":
        return f"(-{render(tree[1])})"
    if tree[0] in ("min", "max"):
        return f"{tree[0]}({', '.join(map(render, tree[1]))})"
    if tree[0] == "round":
        return f"round({render(tree[1])})"
    return f"({render(tree[1])} {tree[0]} {render(tree[2])})"


def checked(value):
    if isinstance(value, complex) or (isinstance(value, float) and not math.isfinite(value)):
        raise Refused
    if isinstance(value, int) and value.bit_length() > 128:
        raise Refused
    return value


def reference(tree):
    if isinstance(tree, (int, float)):
        return tree
    if isinstance(tree, str):
        return NAMES[tree]
    if tree[0] == "neg":
        return -reference(tree[1])
    if tree[0] in ("min", "max"):
        return (min if tree[0] == "min" else max)([reference(t) for t in tree[1]])
    if tree[0] == "round":
        return checked(round(reference(tree[1])))
    a, b = reference(tree[1]), reference(tree[2])
    if tree[0] == "**" and isinstance(a, int) and isinstance(b, int) and abs(a) > 1 and b > 1000:
        raise Refused  # certainly above 128 bits; don't make Python compute it
    try:
        return checked(OPS[tree[0]](a, b))
    except (ZeroDivisionError, OverflowError):
        raise Refused from None


@settings(max_examples=500, deadline=500)
@given(TREES)
def test_matches_python_semantics(tree):
    text = render(tree)
    assume(text.count("(") < 60)  # stay inside the default nesting limit
    try:
        expected = reference(tree)
    except Refused:
        assert error_of(text).code == "E032"
    else:
        result = evaluate(text, NAMES)
        assert result == expected and type(result) is type(expected), text
