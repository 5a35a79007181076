"""Weight initialization: float32, deterministic per (seed, tensor name), and the distribution each scheme names.

The distribution checks are statistical but not flaky: each draw is seeded, so
a given implementation either passes every time or fails every time; the
bounds (Kolmogorov-Smirnov at the 0.1 % level, moments within a few standard
errors) fail when a scheme's bound or standard deviation is wrong by a few percent.
"""

import math
from statistics import NormalDist

import numpy as np
import pytest

from specc.codegen.weights import tensor_rng
from specc.ops.base import fans, init_weight

SHAPE = (128, 64, 5, 5)  # 204,800 values; fan_in 1,600, fan_out 3,200
UNIFORM = {"glorot_uniform": lambda fi, fo: math.sqrt(6.0 / (fi + fo)),
           "he_uniform": lambda fi, fo: math.sqrt(6.0 / fi)}
NORMAL = [("glorot_normal", lambda fi, fo: math.sqrt(2.0 / (fi + fo))),
          ("he_normal", lambda fi, fo: math.sqrt(2.0 / fi)),
          ("nielsen", lambda fi, fo: math.sqrt(1.0 / fo)),
          ("normal", lambda fi, fo: 0.01),
          (("normal", {"std": 0.05}), lambda fi, fo: 0.05)]  # the parsed form of `init: {normal: {std: 0.05}}`
SCHEMES = list(UNIFORM) + [scheme for scheme, _ in NORMAL] + ["zeros"]


def cdf_gap(values: np.ndarray, points: np.ndarray, cdf: list[float]) -> float:
    """Largest gap between the empirical CDF of `values` and the expected `cdf` at `points`
    (the Kolmogorov-Smirnov statistic, evaluated on a fine grid)."""
    empirical = np.searchsorted(np.sort(values.ravel()), points, side="right") / values.size
    return float(np.max(np.abs(empirical - np.asarray(cdf))))


KS_CRITICAL = 1.95 / math.sqrt(math.prod(SHAPE))  # alpha = 0.001
GRID = np.linspace(-1.0, 1.0, 401)


@pytest.mark.parametrize("scheme", SCHEMES, ids=str)
def test_float32_and_deterministic_per_seed_and_name(scheme):
    a = init_weight(scheme, SHAPE, tensor_rng(7, "conv_1.weight"))
    again = init_weight(scheme, SHAPE, tensor_rng(7, "conv_1.weight"))
    assert a.dtype == np.float32 and a.shape == SHAPE
    np.testing.assert_array_equal(a, again)
    if scheme != "zeros":
        assert not np.array_equal(a, init_weight(scheme, SHAPE, tensor_rng(7, "conv_2.weight")))
        assert not np.array_equal(a, init_weight(scheme, SHAPE, tensor_rng(8, "conv_1.weight")))


@pytest.mark.parametrize("scheme", list(UNIFORM))
def test_uniform_schemes_draw_from_the_whole_symmetric_interval(scheme):
    bound = UNIFORM[scheme](*fans(SHAPE))
    w = init_weight(scheme, SHAPE, tensor_rng(0, "w"))
    assert -bound <= w.min() and w.max() <= bound
    assert w.min() < -0.999 * bound and w.max() > 0.999 * bound
    n = w.size
    assert abs(float(w.mean(dtype=np.float64))) < 4 * bound / math.sqrt(3 * n)
    assert float(w.std(dtype=np.float64)) == pytest.approx(bound / math.sqrt(3), rel=0.01)
    points = GRID * bound
    assert cdf_gap(w, points, list((points + bound) / (2 * bound))) < KS_CRITICAL


@pytest.mark.parametrize("scheme, std_of", NORMAL, ids=[str(scheme) for scheme, _ in NORMAL])
def test_normal_schemes_have_mean_zero_and_the_scheme_std(scheme, std_of):
    std = std_of(*fans(SHAPE))
    w = init_weight(scheme, SHAPE, tensor_rng(0, "w"))
    n = w.size
    assert abs(float(w.mean(dtype=np.float64))) < 4 * std / math.sqrt(n)
    assert float(w.std(dtype=np.float64)) == pytest.approx(std, rel=0.01)
    points = GRID * 4 * std
    assert cdf_gap(w, points, [NormalDist(0.0, std).cdf(x) for x in points]) < KS_CRITICAL


def test_zeros():
    assert not init_weight("zeros", SHAPE, tensor_rng(0, "w")).any()
