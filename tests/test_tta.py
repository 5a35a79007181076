"""`build.tta`: the built model runs the network on the input and on deterministic views of it and combines
the outputs like an ensemble. ONNX Runtime on the built model equals the torch forward of the same graph
and a hand computation: the views made here in numpy, the plain model run on each, the softmaxes averaged."""

import textwrap

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from specc.build import build
from specc.compiler import compile_spec
from specc.diagnostics import SpeccError
from specc.limits import DEFAULT_LIMITS
from specc.predict import predict

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SPEC = """\
specc: 1
name: tta
inputs:
  image: {shape: [2, 8, 8]}
preprocess:
  - scale: 0.5
network:
  - conv: {filters: 3, kernel: 3, padding: same, activation: relu}
  - flatten
  - dense: 5
"""


def write(tmp_path, name: str, transforms: str = "", combine: str = "mean", extra: str = "") -> str:
    text = SPEC + extra
    if transforms:
        text += f"build:\n  tta:\n    combine: {combine}\n    transforms:\n" + textwrap.indent(transforms, "      ")
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return str(path)


def run(model_path: str, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    return session.run(None, {"image": x})[0]


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def shifted(x: np.ndarray, dy: int, dx: int, fill: float) -> np.ndarray:
    """x with its content moved dy rows down and dx columns right, the vacated pixels `fill`."""
    out = np.full_like(x, fill)
    h, w = x.shape[2:]
    out[:, :, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[:, :, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def resampled(x: np.ndarray, matrix: np.ndarray, mode: str = "bilinear") -> np.ndarray:
    """Training's resampling (specc/train/augment.py) by one output-to-input pixel matrix, zero fill."""
    from specc.train.augment import affine_grid

    n, _, h, w = x.shape
    theta = torch.diag(torch.tensor([2.0 / w, 2.0 / h, 1.0])) @ torch.tensor(matrix, dtype=torch.float32) \
        @ torch.diag(torch.tensor([w / 2.0, h / 2.0, 1.0]))
    grid = affine_grid(theta.expand(n, 3, 3), h, w)
    return F.grid_sample(torch.from_numpy(x), grid, mode=mode, padding_mode="zeros", align_corners=False).numpy()


def rotation(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).normal(size=(3, 2, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The spec without `build.tta`, built: the network the views run through (same initial weights)."""
    tmp = tmp_path_factory.mktemp("plain")
    return build(write(tmp, "plain"), str(tmp / "out"), limits=DEFAULT_LIMITS).model_path


PIXEL_VIEWS = """\
- flip: {horizontal: true, vertical: true}
- shift: {pixels: 2, fill: 0.25}
- crop: {size: [8, 8], padding: 1}
"""


def pixel_views(x):
    views = [x, x[:, :, :, ::-1], x[:, :, ::-1, :]]
    views += [shifted(x, dy, dx, 0.25) for dy, dx in ((-2, 0), (2, 0), (0, -2), (0, 2))]
    views += [shifted(x, dy, dx, 0.0) for dy, dx in ((1, 1), (1, -1), (-1, 1), (-1, -1))]
    return [np.ascontiguousarray(v) for v in views]


def test_flip_shift_crop_views_equal_the_hand_computation_and_torch(tmp_path, x, plain):
    spec = write(tmp_path, "s", PIXEL_VIEWS)
    result = build(spec, str(tmp_path / "out"), limits=DEFAULT_LIMITS, check_onnx=True)
    assert result.manifest["tta"] == {"transforms": ["flip", "shift", "crop"], "views": 11, "combine": "mean"}
    got = run(result.model_path, x)
    expected = np.mean([softmax(run(plain, v)) for v in pixel_views(x)], axis=0)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.save(tmp_path / "x.npy", x)
    (torch_out,) = predict(spec, str(tmp_path / "x.npy"), backend="torch").values()
    np.testing.assert_allclose(got, torch_out, atol=1e-5)
    ops = [n.op_type for n in onnx.load(result.model_path).graph.node]
    assert ops.count("Pad") == 8 and ops.count("Conv") == 11  # the shifted and cropped views; a copy per view


def test_rotate_and_scale_views_resample_as_training_does(tmp_path, x, plain):
    spec = write(tmp_path, "s", "- rotate: 20\n- scale: {range: [0.8, 1.25]}\n")
    result = build(spec, str(tmp_path / "out"), limits=DEFAULT_LIMITS, check_onnx=True)
    got = run(result.model_path, x)
    matrices = [rotation(-20), rotation(20), np.diag([1 / 0.8, 1 / 0.8, 1]), np.diag([1 / 1.25, 1 / 1.25, 1])]
    views = [x] + [resampled(x, m) for m in matrices]
    expected = np.mean([softmax(run(plain, v)) for v in views], axis=0)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.save(tmp_path / "x.npy", x)
    (torch_out,) = predict(spec, str(tmp_path / "x.npy"), backend="torch").values()
    np.testing.assert_allclose(got, torch_out, atol=1e-5)
    assert [n.op_type for n in onnx.load(result.model_path).graph.node].count("GridSample") == 4


def test_nearest_views_read_whole_pixels(tmp_path, x, plain):
    spec = write(tmp_path, "s", "- rotate: {degrees: 20, interpolation: nearest}\n- scale: {range: [0.8, 1.25]}\n")
    result = build(spec, str(tmp_path / "out"), limits=DEFAULT_LIMITS, check_onnx=True)
    views = [x, resampled(x, rotation(-20), "nearest"), resampled(x, rotation(20), "nearest"),
             resampled(x, np.diag([1 / 0.8, 1 / 0.8, 1])), resampled(x, np.diag([1 / 1.25, 1 / 1.25, 1]))]
    assert set(np.unique(views[1])) <= set(np.unique(x)) | {0.0}
    expected = np.mean([softmax(run(plain, v)) for v in views], axis=0)
    got = run(result.model_path, x)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.save(tmp_path / "x.npy", x)
    (torch_out,) = predict(spec, str(tmp_path / "x.npy"), backend="torch").values()
    np.testing.assert_allclose(got, torch_out, atol=1e-5)
    modes = [a.s for n in onnx.load(result.model_path).graph.node if n.op_type == "GridSample"
             for a in n.attribute if a.name == "mode"]
    assert modes.count(b"nearest") == 2 and len(modes) == 4


def test_vote_counts_each_view_once(tmp_path, x, plain):
    result = build(write(tmp_path, "s", PIXEL_VIEWS, combine="vote"), str(tmp_path / "out"), limits=DEFAULT_LIMITS)
    got = run(result.model_path, x)
    probs = np.stack([softmax(run(plain, v)) for v in pixel_views(x)])
    votes = np.eye(probs.shape[-1])[probs.argmax(-1)].mean(0)
    np.testing.assert_allclose(got, (votes + 1e-3 * probs.mean(0)) / (1 + 1e-3), atol=1e-5)


def test_views_apply_before_preprocess_to_nhwc_uint8_inputs(tmp_path):
    """As training's augmenter sees it: the raw values as floats, channels first; `preprocess` after."""
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.replace("shape: [2, 8, 8]}", "shape: [8, 8, 2], dtype: uint8, layout: NHWC}")
                    + "build:\n  tta: {transforms: [{shift: {pixels: 1, fill: 7}}]}\n")
    graph = compile_spec(str(spec), DEFAULT_LIMITS).graph
    from specc.tta_build import entry_value, with_views

    assert entry_value(graph).producer.op == "to_channels_first"
    merged = with_views(graph, compile_spec(str(spec), DEFAULT_LIMITS).spec.build["tta"]["transforms"], "mean")
    view = merged.node("view_1.tta_view")
    assert view.inputs[0].producer.op == "to_channels_first" and view.output.users()[0].op == "scale"
    result = build(str(spec), str(tmp_path / "out"), limits=DEFAULT_LIMITS)
    x = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 2)).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    (torch_out,) = predict(str(spec), str(tmp_path / "x.npy"), backend="torch").values()
    np.testing.assert_allclose(run(result.model_path, x), torch_out, atol=1e-5)


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_tta_builds_at_lower_precision(tmp_path, x, precision):
    spec = write(tmp_path, "s", PIXEL_VIEWS + "- rotate: 10\n")
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(2).normal(size=(16, 2, 8, 8)).astype(np.float32))
    result = build(spec, str(tmp_path / "out"), limits=DEFAULT_LIMITS, precision=precision,
                   calibration_data=str(tmp_path / "calib.npz"), check_accuracy=False, check_onnx=True)
    got = run(result.model_path, x)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-2)
    fp32 = run(build(spec, str(tmp_path / "fp32"), limits=DEFAULT_LIMITS).model_path, x)
    np.testing.assert_allclose(got, fp32, atol=0.05)


def test_tta_composes_with_an_ensemble_weights_file(tmp_path, x, plain):
    from safetensors.numpy import save_file

    spec = write(tmp_path, "s", "- flip: {horizontal: true}\n")
    graph = compile_spec(spec, DEFAULT_LIMITS).graph
    rng = np.random.default_rng(3)
    members = [{n: rng.normal(size=v.shape).astype(np.float32) for n, v in graph.params.items()} for _ in range(2)]
    save_file({f"member_{i}.{n}": a for i, m in enumerate(members) for n, a in m.items()},
              str(tmp_path / "ensemble.safetensors"), metadata={"specc.ensemble.members": "2",
                                                               "specc.ensemble.combine": "mean"})
    result = build(spec, str(tmp_path / "out"), weights=str(tmp_path / "ensemble.safetensors"), limits=DEFAULT_LIMITS)
    assert result.manifest["weights"]["ensemble"]["members"] == 2 and result.manifest["tta"]["views"] == 2
    names = [n.name for n in onnx.load(result.model_path).graph.node]
    assert any(n.startswith("member_1.view_1.") for n in names)
    expected = []
    for i, tensors in enumerate(members):  # each member alone, with its views: the mean of members x views
        save_file(tensors, str(tmp_path / f"m{i}.safetensors"))
        one = build(spec, str(tmp_path / f"m{i}"), weights=str(tmp_path / f"m{i}.safetensors"), limits=DEFAULT_LIMITS)
        expected.append(run(one.model_path, x))
    np.testing.assert_allclose(run(result.model_path, x), np.mean(expected, axis=0), atol=1e-5)


@pytest.mark.parametrize("transform, code, words", [
    ("- noise: 0.1\n", "E014", "`noise` is random"),
    ("- elastic: {alpha: 3}\n", "E014", "`elastic` is random"),
    ("- color: {brightness: 0.2}\n", "E014", "`color` is random"),
    ("- expand: {shift: 1}\n", "E014", "`expand` is static"),
    ("- flip: {}\n", "E013", "enables no direction"),
    ("- crop: {size: [6, 6], padding: 1}\n", "E076", "change the input's size"),
])
def test_transforms_that_make_no_deterministic_view_are_refused_at_the_transform(tmp_path, transform, code, words):
    spec = write(tmp_path, "s", "- flip: {horizontal: true}\n" + transform)
    with pytest.raises(SpeccError) as caught:
        compile_spec(spec, DEFAULT_LIMITS)
    (diag,) = caught.value.diagnostics
    assert diag.code == code and words in diag.message
    assert (diag.span.path, diag.span.line, diag.span.column) == (spec, 16, 9)  # the second transform's key


def test_resampled_views_need_opset_16_and_geometric_views_need_images(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC + "build:\n  opset: 15\n  tta: {transforms: [{rotate: 10}]}\n")
    with pytest.raises(SpeccError) as caught:
        compile_spec(str(spec), DEFAULT_LIMITS)
    assert [(d.code, d.span.line) for d in caught.value.diagnostics] == [("E013", 13)]
    spec.write_text(SPEC.replace("[2, 8, 8]", "[128]").replace("  - conv: {filters: 3, kernel: 3, padding: same, "
                                                                "activation: relu}\n  - flatten\n", "")
                    + "build:\n  tta: {transforms: [{flip: {horizontal: true}}]}\n")
    with pytest.raises(SpeccError) as caught:
        compile_spec(str(spec), DEFAULT_LIMITS)
    assert [(d.code, d.span.line) for d in caught.value.diagnostics] == [("E076", 10)]


def test_bench_times_the_views_on_torch_too(tmp_path):
    """`specc bench SPEC`'s torch row runs the model `build` writes, views included."""
    from specc.bench import _torch_runner

    spec = write(tmp_path, "bench", "- flip: {horizontal: true}\n- shift: 1\n")
    x = np.random.default_rng(5).random((3, 2, 8, 8)).astype(np.float32)
    built = build(spec, str(tmp_path / "out"), limits=DEFAULT_LIMITS)
    got = _torch_runner(spec, None, DEFAULT_LIMITS)({"image": x})
    np.testing.assert_allclose(next(iter(got.values())).numpy(), run(built.model_path, x), atol=1e-5)


def test_rotations_need_a_fixed_image_size(tmp_path):
    path = tmp_path / "sym.yaml"
    path.write_text(SPEC.replace("[2, 8, 8]", "[2, H, W]").replace("  - flatten\n", "  - global_avgpool\n")
                    + "build:\n  tta: {transforms: [{rotate: 5}, {flip: {horizontal: true}}]}\n")
    with pytest.raises(SpeccError) as caught:
        compile_spec(str(path), DEFAULT_LIMITS)
    (found,) = caught.value.diagnostics
    assert found.code == "E076" and "needs a fixed image size" in found.message and found.span.line == 12


def test_tta_null_is_no_views(tmp_path, x, plain):
    """An optional section written as null is left out, as `build: {tta: null}` says; the schema agrees."""
    import jsonschema
    import yaml

    from specc.parser.schema import spec_schema

    path = tmp_path / "none.yaml"
    path.write_text(SPEC + "build:\n  tta: null\n")
    assert compile_spec(str(path), DEFAULT_LIMITS).spec.build["tta"] is None
    built = build(str(path), str(tmp_path / "out"), limits=DEFAULT_LIMITS)
    np.testing.assert_array_equal(run(built.model_path, x), run(plain, x))
    jsonschema.validate(yaml.safe_load(path.read_text()), spec_schema())


def test_inspect_counts_the_views(tmp_path):
    from specc.inspection import inspect_json, inspect_text

    compiled = compile_spec(write(tmp_path, "seen", "- flip: {horizontal: true}\n- shift: 1\n", combine="vote"),
                            DEFAULT_LIMITS)
    assert inspect_json(compiled.graph, compiled.spec)["tta"] == {"views": 6, "combine": "vote",
                                                                  "transforms": ["flip", "shift"]}
    assert "runs 6 times per example" in inspect_text(compiled.graph, compiled.spec)
    plain = compile_spec(write(tmp_path, "unseen"), DEFAULT_LIMITS)
    assert inspect_json(plain.graph, plain.spec)["tta"] is None
