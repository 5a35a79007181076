"""The CLI contract: commands, options, exit codes, JSON shapes, artifacts."""

import json
import os

import jsonschema
import numpy as np
import onnx
import pytest

from conftest import ROOT, SPECS, run_cli, zoo_specs
from specc.cli import main
from specc.limits import Limits
from specc.parser.yaml_loader import load_yaml_text


def test_validate_exit_codes(tmp_path, capsys):
    assert main(["validate", SPECS]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("specc: 1\nname: bad\ninputs: {x: {shape: [4]}}\nnetwork:\n  - desne: 10\n")
    assert main(["validate", str(bad)]) == 1
    err = capsys.readouterr()
    assert f"{bad}:5:5: error[E020]: unknown op `desne`" in err.out
    assert "hint: did you mean `dense`?" in err.out
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["validate", "--format", "xml", str(bad)])
    assert exc.value.code == 2


def test_validate_json_and_github(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("specc: 1\nname: bad\ninputs: {x: {shape: [4]}}\nnetwork:\n  - dense: -3\n  - dropout: 1.5\n")
    assert main(["validate", "--format", "json", str(bad)]) == 1
    diags = json.loads(capsys.readouterr().out)
    assert [(d["line"], d["code"]) for d in diags] == [(5, "E013"), (6, "E013")]
    for d in diags:
        assert set(d) == {"path", "line", "column", "severity", "code", "message", "hint"}
        assert d["severity"] == "error" and d["hint"]
    assert main(["validate", "--format", "github", str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.startswith(f"::error file={bad},line=") for line in lines)


def test_inspect_json(capsys):
    assert main(["inspect", os.path.join(SPECS, "lenet5.yaml"), "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["total_params"] == 61_706
    assert [layer["name"] for layer in info["layers"]][:3] == ["conv_1", "avgpool_2", "conv_3"]
    first = info["layers"][0]
    assert first["output_shape"] == ["N", 6, 28, 28] and first["params"] == 156
    assert first["macs"] == 6 * 28 * 28 * 25
    assert info["total_macs"] == sum(layer["macs"] for layer in info["layers"])


def test_inspect_text_and_ir(capsys):
    assert main(["inspect", os.path.join(SPECS, "lenet5.yaml")]) == 0
    text = capsys.readouterr().out
    assert "total params (trainable): 61,706" in text and "conv_1" in text
    assert main(["inspect", os.path.join(SPECS, "lenet5.yaml"), "--ir"]) == 0
    assert "%conv_1 = conv(%image, @conv_1.weight: [6, 1, 5, 5], @conv_1.bias: [6])" in capsys.readouterr().out


def test_build_writes_checked_model_and_manifest(tmp_path):
    out = tmp_path / "build"
    assert main(["build", os.path.join(SPECS, "resnet_small.yaml"), "-o", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["manifest.json", "model.onnx"]
    onnx.checker.check_model(str(out / "model.onnx"), full_check=True)
    manifest = json.loads((out / "manifest.json").read_text())
    for key in ("spec_sha256", "inputs", "outputs", "opset", "versions", "build_time", "model_sha256"):
        assert key in manifest
    assert manifest["inputs"] == [{"name": "image", "dtype": "uint8", "shape": ["batch", 32, 32, 3]}]
    assert manifest["opset"] == 17 and set(manifest["versions"]) >= {"specc", "onnx", "torch"}
    model = onnx.load(str(out / "model.onnx"))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    names = [n.name for n in model.graph.node]
    assert "stage1.1.conv_1/Conv" in names  # node names carry the spec layer names
    assert names[:2] == ["image.cast", "image.to_channels_first"]  # layout and dtype live inside the graph


def test_failed_build_leaves_no_valid_looking_model(tmp_path, monkeypatch):
    out = tmp_path / "build"
    spec = os.path.join(SPECS, "tiny_mlp.yaml")
    assert main(["build", spec, "-o", str(out)]) == 0

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(onnx.checker, "check_model", broken)
    assert main(["build", spec, "-o", str(out)]) == 3  # reported as an internal error, no traceback
    leftovers = sorted(os.listdir(out))
    assert leftovers == ["manifest.json", "model.onnx"]  # the previous complete build is untouched
    assert json.loads((out / "manifest.json").read_text())["name"] == "tiny_mlp"


def test_predict_backends_agree(tmp_path, capsys):
    spec = os.path.join(SPECS, "lenet5.yaml")
    x = np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "b"
    assert main(["build", spec, "-o", str(out)]) == 0
    results = {}
    for name, args in {"dir": [str(out)], "torch": [spec, "--backend", "torch"],
                       "ort": [spec, "--backend", "onnxruntime"]}.items():
        target = tmp_path / f"{name}.npy"
        assert main(["predict", *args, "--input", str(tmp_path / "x.npy"), "--output", str(target)]) == 0
        results[name] = np.load(target)
    assert results["dir"].shape == (2, 10)
    np.testing.assert_allclose(results["dir"], results["torch"], atol=1e-5)
    np.testing.assert_allclose(results["ort"], results["torch"], atol=1e-5)
    # a built model holds its weights: --weights with it would be ignored, so it is refused
    assert main(["predict", str(out), "--input", str(tmp_path / "x.npy"), "--weights", "w.safetensors"]) == 2
    assert "--weights applies to a SPEC" in capsys.readouterr().err


def test_predict_rejects_bad_input(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 32, 32), np.float32))
    assert main(["predict", os.path.join(SPECS, "lenet5.yaml"), "--input", str(tmp_path / "x.npy")]) == 1
    assert "input `image` has shape [2, 3, 32, 32]; the model needs ['N', 1, 32, 32]" in capsys.readouterr().err


def test_weights_roundtrip_and_mismatch(tmp_path, capsys):
    from specc.codegen.weights import init_weights, save_weights
    from specc.compiler import compile_spec

    spec = os.path.join(SPECS, "lenet5.yaml")
    weights = init_weights(compile_spec(spec, Limits()).graph)
    weights = {k: v + 1 for k, v in weights.items()}
    save_weights(str(tmp_path / "w.safetensors"), weights)
    assert main(["build", spec, "-o", str(tmp_path / "b"), "--weights", str(tmp_path / "w.safetensors")]) == 0
    model = onnx.load(str(tmp_path / "b" / "model.onnx"))
    stored = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(stored["conv_1.weight"], weights["conv_1.weight"])

    bad = dict(weights)
    del bad["conv_1.bias"]
    bad["logits.weight"] = np.zeros((3, 3), np.float32)
    bad["stray.weight"] = np.zeros(2, np.float32)
    save_weights(str(tmp_path / "bad.safetensors"), bad)
    assert main(["build", spec, "-o", str(tmp_path / "c"), "--weights", str(tmp_path / "bad.safetensors")]) == 1
    err = capsys.readouterr().err
    assert "no tensor `conv_1.bias`" in err and "E080" in err
    assert "`logits.weight`" in err and "needs [10, 84]" in err
    assert "`stray.weight`, which no layer of the spec uses" in err
    assert "lenet5.yaml:" in err  # located at the layer's line
    assert not os.path.exists(tmp_path / "c" / "model.onnx")



def test_weights_of_another_spec_are_one_error(tmp_path, capsys):
    """A file with no tensor of the spec is one diagnostic, not one per tensor of each; extra tensors are
    listed in one."""
    from specc.codegen.weights import init_weights, save_weights
    from specc.compiler import compile_spec

    spec = os.path.join(SPECS, "lenet5.yaml")
    save_weights(str(tmp_path / "other.safetensors"), {f"fc_{i}.weight": np.zeros(2, np.float32) for i in range(9)})
    assert main(["build", spec, "-o", str(tmp_path / "b"), "--weights", str(tmp_path / "other.safetensors")]) == 1
    err = capsys.readouterr().err
    assert err.count("error[E080]") == 1 and "does not fit this spec: none of its 9 tensors" in err
    assert "`fc_0.weight`, `fc_1.weight`, `fc_2.weight`, `fc_3.weight` and 5 more" in err

    weights = init_weights(compile_spec(spec, Limits()).graph)
    weights.update({f"stray_{i}.weight": np.zeros(2, np.float32) for i in range(3)})
    save_weights(str(tmp_path / "extra.safetensors"), weights)
    assert main(["build", spec, "-o", str(tmp_path / "c"), "--weights", str(tmp_path / "extra.safetensors")]) == 1
    err = capsys.readouterr().err
    assert err.count("error[E080]") == 1
    assert "has 3 tensors that no layer of the spec uses: `stray_0.weight`, `stray_1.weight`, `stray_2.weight`" in err

def test_schema_is_valid_and_accepts_the_zoo(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for name in zoo_specs():
        with open(os.path.join(SPECS, name)) as handle:  # YAML 1.2, as yaml-language-server reads it
            document = load_yaml_text(handle.read(), name, Limits()).plain()
        errors = list(validator.iter_errors(document))
        assert not errors, f"{name}: {errors[0].message if errors else ''}"
    assert list(validator.iter_errors({"specc": 1, "name": "x", "inputs": {}, "network": [{"desne": 3}]}))


def test_cold_validate_imports_neither_torch_nor_onnx():
    code = ("import sys; from specc.cli import main; rc = main(['validate', 'specs']); "
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules)); sys.exit(rc)")
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_cli_subprocess_never_tracebacks(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"specc: 1\nname: [unclosed\n")
    result = run_cli("validate", str(bad))
    assert result.returncode == 1 and "Traceback" not in result.stderr + result.stdout
    assert "error[E001]" in result.stdout


def test_large_models_use_onnx_external_data(tmp_path, monkeypatch):
    """Models over 2 GB are saved with external data; exercised here with the threshold lowered."""
    import onnxruntime as ort

    import specc.build

    monkeypatch.setattr(specc.build, "EXTERNAL_DATA_THRESHOLD", 0)
    out = tmp_path / "b"
    assert main(["build", os.path.join(SPECS, "lenet5.yaml"), "-o", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["manifest.json", "model.onnx", "model.onnx.data"]
    assert json.loads((out / "manifest.json").read_text())["external_data"] == "model.onnx.data"
    assert os.path.getsize(out / "model.onnx") < 20_000 < os.path.getsize(out / "model.onnx.data")
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {"image": np.zeros((2, 1, 32, 32), np.float32)})[0].shape == (2, 10)
    monkeypatch.setattr(specc.build, "EXTERNAL_DATA_THRESHOLD", 10**12)
    assert main(["build", os.path.join(SPECS, "lenet5.yaml"), "-o", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["manifest.json", "model.onnx"]  # the stale data file is gone


def test_memory_budget_refuses_before_allocating(tmp_path, capsys):
    spec = tmp_path / "huge.yaml"
    spec.write_text("specc: 1\nname: huge\ninputs: {x: {shape: [1000000]}}\nnetwork:\n  - dense: 10000000\n")
    assert main(["inspect", str(spec), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_params"] == 10_000_010_000_000
    assert main(["build", str(spec), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "error[E091]" in err and "36.4 TiB of weights" in err
    assert main(["build", os.path.join(SPECS, "lenet5.yaml"), "-o", str(tmp_path / "o"),
                 "--memory-budget", "100K"]) == 1
    assert "over the memory budget of 100.0 KiB" in capsys.readouterr().err


def test_unknown_pass_is_a_warning_not_an_error(tmp_path, capsys):
    spec = tmp_path / "p.yaml"
    spec.write_text("specc: 1\nname: p\ninputs: {x: {shape: [4]}}\nnetwork: [{dense: 2}]\n"
                    "build: {passes: [-fold_konstants]}\n")
    assert main(["validate", str(spec)]) == 0
    out = capsys.readouterr().out
    assert f"{spec}:5:18: warning[W001]: pass `fold_konstants` is not in this version's pipeline" in out
    assert out.rstrip().endswith(f"{spec}: ok")


def test_validate_checks_the_memory_budget_only_when_asked(tmp_path, capsys):
    spec = tmp_path / "big.yaml"
    spec.write_text("specc: 1\nname: big\ninputs: {x: {shape: [1, 28, 28]}}\nnetwork:\n"
                    "  - conv: {filters: 99999999999, kernel: 3}\n  - global_avgpool\n  - dense: 10\n")
    assert main(["validate", str(spec)]) == 0
    assert main(["validate", str(spec), "--memory-budget", "1G"]) == 1
    assert "error[E091]" in capsys.readouterr().out


class _InterruptingImport:
    """A meta-path finder that raises KeyboardInterrupt when specc.cli is imported, as Ctrl-C during it does."""

    def find_spec(self, name, path=None, target=None):
        if name == "specc.cli":
            raise KeyboardInterrupt
        return None


@pytest.mark.parametrize("where", ["import", "parse"])
def test_ctrl_c_before_the_command_runs_is_not_a_traceback(where, monkeypatch, capsys):
    """The console script's entry catches an interrupt while the command line is imported or parses its arguments."""
    import sys

    from specc import entry

    if where == "import":
        monkeypatch.delitem(sys.modules, "specc.cli")
        monkeypatch.setattr(sys, "meta_path", [_InterruptingImport(), *sys.meta_path])
    else:
        import specc.cli

        def interrupted_parser():
            raise KeyboardInterrupt
        monkeypatch.setattr(specc.cli, "build_parser", interrupted_parser)
    assert entry.main() == 130
    assert capsys.readouterr().err == "specc: interrupted\n"
