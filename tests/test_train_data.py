"""Training data: every data set kind, the MNIST lookup and download, and every data error.

The full MNIST is read from SPECC_MNIST_DIR (CI sets it); tests that need it skip without it.
Downloads are tested against a local HTTP server; no test reaches the internet (SPECC_OFFLINE is
set for all but the download tests, which point SPECC_MNIST_MIRRORS at 127.0.0.1).
"""

import functools
import gzip
import hashlib
import os
import shutil
import socket
import sys
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from specc.compiler import compile_spec
from specc.diagnostics import Span, SpeccError
from specc.limits import DEFAULT_LIMITS, Limits
from specc.train.data import data_spans, load_dataset
from specc.train.download import MNIST_FILES, MnistFile, ProgressBar, download_mnist
from specc.train.idx import write_idx
from specc.train.mnist import sample_path

MNIST_DIR = os.environ.get("SPECC_MNIST_DIR")
WRITTEN = {"validation": Span("spec.yaml", 9, 17)}  # the spec writes `validation` itself
needs_mnist = pytest.mark.skipif(not MNIST_DIR or not os.path.isdir(MNIST_DIR),
                                 reason="SPECC_MNIST_DIR is not set (CI points it at the MNIST IDX files)")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """An empty cache, no data directory from the environment, and no downloads unless a test allows them."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SPECC_OFFLINE", "1")
    monkeypatch.delenv("SPECC_DATA_DIR", raising=False)
    monkeypatch.delenv("SPECC_MNIST_MIRRORS", raising=False)


def spec_in(directory) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "spec.yaml"
    path.touch()
    return str(path)


def load(tmp_path, dataset, shape=(1, 28, 28), dtype="float32", path=None, validation=10000, **kw):
    cfg = {"dataset": dataset, "path": path, "validation": validation}
    kw.setdefault("spec_path", spec_in(tmp_path / "project"))
    return load_dataset(cfg, input_shape=shape, input_dtype=dtype, **kw)


def refused(code, fn, *args, **kw):
    with pytest.raises(SpeccError) as info:
        fn(*args, **kw)
    diagnostic = info.value.diagnostics[0]
    assert diagnostic.code == code, diagnostic.format_text()
    return diagnostic.format_text()


def small_mnist(directory, n_train=60, n_test=20, gz=False, seed=0):
    """IDX files named like MNIST's, with random 28x28 images and labels 0..9."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(str(directory / f"{prefix}-images-idx3-ubyte{suffix}"), x, compress=gz)
        write_idx(str(directory / f"{prefix}-labels-idx1-ubyte{suffix}"), y, compress=gz)
        arrays[prefix] = (x, y)
    return arrays


# --- mnist-sample ------------------------------------------------------------

def test_mnist_sample_in_the_input_layout_and_dtype(tmp_path):
    ds = load(tmp_path, "mnist-sample")
    assert ds.name == "mnist-sample" and ds.num_classes == 10
    # The default validation count (10,000) is capped at a sixth of the 2,000 training images.
    assert ds.train.x.shape == (1667, 1, 28, 28) and ds.val.x.shape == (333, 1, 28, 28)
    assert ds.test.x.shape == (500, 1, 28, 28)
    assert ds.train.x.dtype == np.float32 and ds.train.y.dtype == np.int64
    assert ds.train.x.max() == 255.0 and ds.train.x.min() == 0.0  # raw pixels: preprocessing is in the model
    assert np.bincount(ds.test.y).tolist() == [50] * 10
    assert np.bincount(np.concatenate([ds.train.y, ds.val.y])).tolist() == [200] * 10

    nhwc = load(tmp_path, "mnist-sample", shape=(28, 28, 1), dtype="uint8", layout="NHWC", validation=0)
    assert nhwc.train.x.shape == (2000, 28, 28, 1) and nhwc.train.x.dtype == np.uint8 and nhwc.val is None
    flat = load(tmp_path, "mnist-sample", shape=(784,), validation=0)
    assert flat.train.x.shape == (2000, 784)
    np.testing.assert_array_equal(flat.train.x.reshape(-1, 28, 28), nhwc.train.x[..., 0])


def test_validation_hold_out_is_seeded_disjoint_and_ordered(tmp_path):
    a = load(tmp_path, "mnist-sample", validation=300, seed=1, spans=WRITTEN)
    b = load(tmp_path, "mnist-sample", validation=300, seed=1)
    c = load(tmp_path, "mnist-sample", validation=300, seed=2)
    assert len(a.val.y) == 300 and len(a.train.y) == 1700
    np.testing.assert_array_equal(a.val.x, b.val.x)
    assert not np.array_equal(a.val.x, c.val.x)
    everything = load(tmp_path, "mnist-sample", validation=0).train.x.reshape(2000, -1)
    rows = {bytes(r): i for i, r in enumerate(everything.astype(np.uint8))}
    val_rows = [rows[bytes(r)] for r in a.val.x.reshape(300, -1).astype(np.uint8)]
    train_rows = [rows[bytes(r)] for r in a.train.x.reshape(1700, -1).astype(np.uint8)]
    assert not set(val_rows) & set(train_rows)
    assert val_rows == sorted(val_rows) and train_rows == sorted(train_rows)


def test_written_validation_count_must_fit(tmp_path):
    text = refused("E073", load, tmp_path, "mnist-sample", validation=5000, spans=WRITTEN)
    assert "2,000" in text and "e.g. 333" in text


def test_sample_is_small_with_its_licence_note():
    path = sample_path()
    assert os.path.getsize(path) < 1_000_000
    note = open(os.path.join(os.path.dirname(path), "README.md")).read()
    assert "CC BY-SA 3.0" in note and "LeCun" in note and "Cortes" in note and "Burges" in note


@needs_mnist
def test_sample_images_are_real_mnist_images(tmp_path):
    sample = np.load(sample_path())
    full = load(tmp_path, "mnist", dtype="uint8", data_dir=MNIST_DIR, validation=0)
    np.testing.assert_array_equal(full.train.x[sample["train_index"], 0], sample["x_train"])
    np.testing.assert_array_equal(full.test.y[sample["test_index"]], sample["y_test"])


def test_shape_and_output_mismatches_are_located_errors(tmp_path):
    text = refused("E074", load, tmp_path, "mnist-sample", shape=(1, 32, 32))
    assert "[28, 28]" in text and "[1, 32, 32]" in text and "784" in text and "1,024" in text
    text = refused("E074", load, tmp_path, "mnist-sample", num_outputs=5)
    assert "10 classes" in text and "5 units" in text and "dense: 10" in text
    assert load(tmp_path, "mnist-sample", num_outputs=10).num_classes == 10
    refused("E013", load, tmp_path, "mnist-sample", path="digits")


# --- mnist: lookup order, offline error, real files -------------------------

def test_mnist_lookup_order(tmp_path, monkeypatch):
    first = small_mnist(tmp_path / "first", n_train=30)
    small_mnist(tmp_path / "env" / "mnist", n_train=40, gz=True)  # a data root with mnist/ inside
    small_mnist(tmp_path / "cache" / "specc" / "mnist", n_train=50)
    monkeypatch.setenv("SPECC_DATA_DIR", str(tmp_path / "env"))
    assert len(load(tmp_path, "mnist", data_dir=str(tmp_path / "first"), validation=0).train.y) == 30
    assert len(load(tmp_path, "mnist", validation=0).train.y) == 40
    monkeypatch.delenv("SPECC_DATA_DIR")
    ds = load(tmp_path, "mnist", validation=0)
    assert len(ds.train.y) == 50 and len(ds.test.y) == 20
    spec = spec_in(tmp_path / "p2")
    np.testing.assert_array_equal(
        load(tmp_path, "mnist", path="../first", spec_path=spec, validation=0, dtype="uint8").train.x[:, 0],
        first["train"][0])


def test_mnist_missing_says_where_it_looked(tmp_path):
    text = refused("E071", load, tmp_path, "mnist", data_dir=str(tmp_path / "nowhere"))
    assert "nowhere (--data)" in text and os.path.join("cache", "specc", "mnist") in text
    assert "SPECC_OFFLINE" in text



def test_a_failed_download_says_where_mnist_was_looked_for_first(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.delenv("SPECC_OFFLINE")
    monkeypatch.setenv("SPECC_MNIST_MIRRORS", dead_mirror())
    text = refused("E075", load, tmp_path, "mnist", data_dir=str(tmp_path / "empty"))
    assert "MNIST is not in" in text and "empty (--data)" in text and "(cache), and could not download" in text
    assert "unreachable" in text


@pytest.mark.parametrize("command", [["train", "SPEC", "-o", "RUN"], ["eval", "SPEC", "--weights", "W"],
                                     ["build", "SPEC", "-o", "RUN"], ["bench", "SPEC"]])
def test_data_option_must_name_a_directory(tmp_path, capsys, command):
    """A mistyped --data is refused, not passed over for SPECC_DATA_DIR, the cache or a download."""
    from specc.cli import main

    spec = os.path.join(os.path.dirname(__file__), os.pardir, "specs", "tiny_mlp.yaml")
    args = [{"SPEC": spec, "RUN": str(tmp_path / "run"), "W": str(tmp_path / "w")}.get(a, a) for a in command]
    (tmp_path / "file").touch()
    for data, why in ((tmp_path / "nowhere", "no such directory"), (tmp_path / "file", "not a directory")):
        assert main(args + ["--data", str(data)]) == 2
        assert f"specc {command[0]}: error: --data {data}: {why}" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()

@needs_mnist
def test_full_mnist_from_the_data_directory(tmp_path):
    ds = load(tmp_path, "mnist", data_dir=MNIST_DIR, dtype="uint8")
    assert ds.train.x.shape == (50000, 1, 28, 28) and ds.val.x.shape == (10000, 1, 28, 28)
    assert ds.test.x.shape == (10000, 1, 28, 28) and ds.train.x.dtype == np.uint8
    counts = np.bincount(np.concatenate([ds.train.y, ds.val.y]))
    assert counts.tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(ds.test.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# --- idx files and their errors ----------------------------------------------

def test_idx_directory_gz_or_not(tmp_path):
    arrays = small_mnist(tmp_path / "project" / "data", gz=True)
    ds = load(tmp_path, "idx", path="data", dtype="uint8", validation=0)
    np.testing.assert_array_equal(ds.train.x[:, 0], arrays["train"][0])
    np.testing.assert_array_equal(ds.test.y, arrays["t10k"][1])
    assert ds.num_classes == 10
    held = small_mnist(tmp_path / "project" / "held", n_train=1, n_test=7, seed=1)  # only its t10k pair is used
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (tmp_path / "project" / "held" / name).unlink()
    ds = load(tmp_path, "idx", path="data", dtype="uint8", validation="held")
    np.testing.assert_array_equal(ds.val.x[:, 0], held["t10k"][0])
    assert len(ds.train.y) == 60


def test_idx_errors(tmp_path):
    data = tmp_path / "project" / "data"
    arrays = small_mnist(data)
    labels = data / "train-labels-idx1-ubyte"
    images = data / "train-images-idx3-ubyte"

    write_idx(str(labels), arrays["train"][1][:-1])
    text = refused("E073", load, tmp_path, "idx", path="data")
    assert "60 images" in text and "59 labels" in text

    labels.write_bytes(b"\x00\x00\x08\x07" + bytes(100))
    assert "magic number 0x00000807" in refused("E072", load, tmp_path, "idx", path="data")
    write_idx(str(labels), arrays["train"][1])

    full = images.read_bytes()
    images.write_bytes(full[:-100])
    assert "truncated" in refused("E072", load, tmp_path, "idx", path="data")
    images.write_bytes(full + b"\0")
    assert "1 bytes after" in refused("E072", load, tmp_path, "idx", path="data")
    images.write_bytes(full)
    small = Limits(memory_budget_bytes=10_000)
    assert "more than 10,000 bytes" in refused("E072", load, tmp_path, "idx", path="data", limits=small)
    images.unlink()
    gz = data / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(full))
    assert "once decompressed" in refused("E072", load, tmp_path, "idx", path="data", limits=small)
    gz.write_bytes(gzip.compress(full)[:-30])
    assert "gzip stream ends early" in refused("E072", load, tmp_path, "idx", path="data")
    gz.unlink()
    text = refused("E071", load, tmp_path, "idx", path="data")
    assert "train-images-idx3-ubyte" in text and "data" in text
    assert "not found" in refused("E071", load, tmp_path, "idx", path="missing")


def test_labels_beyond_the_output_units(tmp_path):
    data = tmp_path / "project" / "data"
    small_mnist(data)
    text = refused("E074", load, tmp_path, "idx", path="data", num_outputs=4)
    assert "labels 0..9" in text and "4 units" in text


# --- npz ---------------------------------------------------------------------

def write_npz(path, **arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def test_npz_with_its_own_validation_split(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {f"x_{s}": rng.random((n, 8)).astype(np.float32) for s, n in (("train", 30), ("test", 10), ("val", 5))}
    arrays.update({f"y_{s}": np.arange(n) % 3 for s, n in (("train", 30), ("test", 10), ("val", 5))})
    write_npz(tmp_path / "project" / "d.npz", **arrays)
    ds = load(tmp_path, "npz", shape=(2, 4), path="d.npz")
    assert ds.train.x.shape == (30, 2, 4) and ds.val.x.shape == (5, 2, 4) and ds.num_classes == 3
    np.testing.assert_array_equal(ds.val.x.reshape(5, 8), arrays["x_val"])
    text = refused("E073", load, tmp_path, "npz", shape=(8,), path="d.npz", validation=3, spans=WRITTEN)
    assert "x_val" in text


def test_npz_channels_last_images_are_transposed_not_scrambled(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)  # (n, H, W, C)
    write_npz(tmp_path / "project" / "d.npz", x_train=x, y_train=np.arange(4), x_test=x, y_test=np.arange(4))
    ds = load(tmp_path, "npz", shape=(3, 5, 6), dtype="uint8", path="d.npz", validation=0)
    np.testing.assert_array_equal(ds.train.x, x.transpose(0, 3, 1, 2))


def test_npz_errors(tmp_path):
    npz = tmp_path / "project" / "d.npz"
    write_npz(npz, x_train=np.zeros((3, 4)), y_train=np.zeros(3))
    text = refused("E072", load, tmp_path, "npz", shape=(4,), path="d.npz")
    assert "x_test, y_test" in text and "x_train, y_train" in text
    write_npz(npz, x_train=np.zeros((3, 4)), y_train=np.zeros(2), x_test=np.zeros((1, 4)), y_test=np.zeros(1))
    assert "3 examples but y_train holds 2" in refused("E073", load, tmp_path, "npz", shape=(4,), path="d.npz")
    write_npz(npz, x_train=np.full((3, 4), 0.5), y_train=np.zeros(3), x_test=np.zeros((1, 4)), y_test=np.zeros(1))
    assert "fractional" in refused("E074", load, tmp_path, "npz", shape=(4,), dtype="uint8", path="d.npz")
    write_npz(npz, x_train=np.zeros((3, 4)), y_train=np.eye(3), x_test=np.zeros((1, 4)), y_test=np.zeros(1))
    assert "one class index per example" in refused("E073", load, tmp_path, "npz", shape=(4,), path="d.npz")
    write_npz(npz, x_train=np.array([[1], [2]], dtype=object), y_train=np.zeros(2),
              x_test=np.zeros((1, 1)), y_test=np.zeros(1))
    refused("E072", load, tmp_path, "npz", shape=(1,), path="d.npz")
    npz.write_bytes(b"not a zip")
    refused("E072", load, tmp_path, "npz", shape=(1,), path="d.npz")
    write_npz(npz, x_train=np.zeros((3, 4)), y_train=np.zeros(3), x_test=np.zeros((1, 4)), y_test=np.zeros(1))
    with zipfile.ZipFile(npz, "a") as archive:  # numpy hands a member that is no .npy over as its bytes
        archive.writestr("x_val.npy", b"garbage")
        archive.writestr("y_val.npy", b"garbage")
    assert "member x_val.npy is not a .npy array" in refused("E072", load, tmp_path, "npz", shape=(4,),
                                                              path="d.npz", validation=0)
    assert "d2.npz" in refused("E071", load, tmp_path, "npz", shape=(1,), path="d2.npz")
    refused("E011", load, tmp_path, "npz", shape=(1,))


def test_validation_from_a_separate_file(tmp_path):
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    write_npz(tmp_path / "project" / "d.npz", x_train=x, y_train=np.arange(10) % 2, x_test=x[:2], y_test=[0, 1])
    write_npz(tmp_path / "project" / "v.npz", x_train=x[:3] + 100, y_train=[1, 0, 1])
    ds = load(tmp_path, "npz", shape=(4,), path="d.npz", validation="v.npz")
    assert len(ds.train.y) == 10 and ds.val.x.min() == 100 and ds.val.y.tolist() == [1, 0, 1]


# --- folder ------------------------------------------------------------------

def write_png(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def image_tree(root, size=(6, 5)):
    """train/{cat,dog}/ and test/dog/ with RGB images whose pixels encode (class, index, channel)."""
    h, w = size
    images = {}
    for split, classes in (("train", ("cat", "dog")), ("test", ("dog",))):
        for label, name in enumerate(classes):
            for i in range(2):
                array = np.zeros((h, w, 3), np.uint8)
                array[..., 0], array[..., 1], array[..., 2] = 10 * label + i, 100, np.arange(w)[None, :]
                write_png(root / split / name / f"{i}.png", array)
                images[(split, name, i)] = array
    return images


def test_folder_rgb_and_grayscale(tmp_path):
    images = image_tree(tmp_path / "project" / "imgs")
    ds = load(tmp_path, "folder", shape=(3, 6, 5), dtype="uint8", path="imgs", validation=0)
    assert ds.num_classes == 2 and ds.train.y.tolist() == [0, 0, 1, 1] and ds.test.y.tolist() == [1, 1]
    np.testing.assert_array_equal(ds.train.x[2], images[("train", "dog", 0)].transpose(2, 0, 1))
    nhwc = load(tmp_path, "folder", shape=(6, 5, 3), layout="NHWC", dtype="uint8", path="imgs", validation=0)
    np.testing.assert_array_equal(nhwc.test.x[1], images[("test", "dog", 1)])
    grey = load(tmp_path, "folder", shape=(1, 6, 5), path="imgs", validation=0)
    assert grey.train.x.shape == (4, 1, 6, 5) and grey.train.x.dtype == np.float32


def test_folder_validation_is_class_directories_or_a_folder_data_set(tmp_path):
    image_tree(tmp_path / "project" / "imgs")
    image_tree(tmp_path / "project" / "held")
    classes = load(tmp_path, "folder", shape=(3, 6, 5), path="imgs", validation="held/train")
    dataset = load(tmp_path, "folder", shape=(3, 6, 5), path="imgs", validation="held")
    assert classes.val.y.tolist() == dataset.val.y.tolist() == [0, 0, 1, 1]
    np.testing.assert_array_equal(classes.val.x, dataset.val.x)


def test_folder_errors(tmp_path, monkeypatch):
    root = tmp_path / "project" / "imgs"
    (root / "train").mkdir(parents=True)
    assert "no class directories" in refused("E073", load, tmp_path, "folder", shape=(3, 6, 5), path="imgs")
    image_tree(root)
    write_png(root / "train" / "cat" / "big.png", np.zeros((7, 5, 3), np.uint8))
    assert "one size" in refused("E073", load, tmp_path, "folder", shape=(3, 6, 5), path="imgs")
    (root / "train" / "cat" / "big.png").write_bytes(b"not a png")
    assert "cannot decode" in refused("E072", load, tmp_path, "folder", shape=(3, 6, 5), path="imgs")
    (root / "train" / "cat" / "big.png").unlink()
    monkeypatch.setitem(sys.modules, "PIL", None)
    assert "pip install pillow" in refused("E098", load, tmp_path, "folder", shape=(3, 6, 5), path="imgs")


# --- paths: relative to the spec, confined in CI mode ------------------------

def test_paths_are_relative_to_the_spec_and_confined_in_ci(tmp_path, monkeypatch):
    small_mnist(tmp_path / "outside")
    monkeypatch.chdir(tmp_path / "outside")
    spec = spec_in(tmp_path / "project")
    ci = DEFAULT_LIMITS.strict()
    refused("E040", load, tmp_path, "idx", path="../outside", spec_path=spec, limits=ci)
    assert len(load(tmp_path, "idx", path="../outside", spec_path=spec, validation=0).train.y) == 60
    os.symlink(tmp_path / "outside", tmp_path / "project" / "link")  # inside the tree by name only
    refused("E040", load, tmp_path, "idx", path="link", spec_path=spec, limits=ci)
    (tmp_path / "project" / "data").mkdir()
    os.symlink(tmp_path / "outside" / "train-images-idx3-ubyte", tmp_path / "project" / "data" /
               "train-images-idx3-ubyte")
    for name in ("train-labels-idx1-ubyte",):
        shutil.copy(tmp_path / "outside" / name, tmp_path / "project" / "data" / name)
    assert "resolves outside" in refused("E040", load, tmp_path, "idx", path="data", spec_path=spec, limits=ci)


def test_errors_point_at_the_spec_line(tmp_path):
    spec = tmp_path / "model.yaml"
    spec.write_text("specc: 1\nname: m\ninputs:\n  x: {shape: [4]}\nnetwork:\n  - dense: 2\n"
                    "training:\n  data:\n    dataset: npz\n    path: nothing.npz\n")
    compiled = compile_spec(str(spec), DEFAULT_LIMITS)
    cfg = compiled.spec.training["data"]
    with pytest.raises(SpeccError) as info:
        load_dataset(cfg, spec_path=str(spec), input_shape=(4,), input_dtype="float32",
                     spans=data_spans(compiled.spec))
    diagnostic = info.value.diagnostics[0]
    assert diagnostic.code == "E071" and diagnostic.span.line == 10


# --- download ----------------------------------------------------------------

class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    servers = []

    def start(directory) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(directory)))
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/mirror/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def dead_mirror() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"  # nothing listens there any more: connection refused


def synthetic_file(tmp_path, name="train-labels-idx1-ubyte.gz"):
    """A served .gz and the MnistFile entry that describes it."""
    content = b"\x00\x00\x08\x01" + (1000).to_bytes(4, "big") + bytes(range(10)) * 100
    packed = gzip.compress(content, mtime=0)
    (tmp_path / "www" / "mirror").mkdir(parents=True, exist_ok=True)
    (tmp_path / "www" / "mirror" / name).write_bytes(packed)
    return MnistFile(name, hashlib.sha256(packed).hexdigest(), hashlib.sha256(content).hexdigest(), len(content)), \
        content


def cache_files(cache):
    return sorted(os.listdir(cache)) if os.path.isdir(cache) else []


def test_download_verifies_and_falls_through_dead_mirrors(tmp_path, serve):
    entry, content = synthetic_file(tmp_path)
    good = serve(tmp_path / "www")
    missing = serve(tmp_path / "empty")  # answers 404
    cache = tmp_path / "dl"
    download_mnist(str(cache), [dead_mirror(), missing, good], files=(entry,), progress=False)
    assert cache_files(cache) == [entry.name]
    assert gzip.decompress((cache / entry.name).read_bytes()) == content


def test_download_accepts_a_recompressed_file_with_the_original_content(tmp_path, serve):
    entry, content = synthetic_file(tmp_path)
    recompressed = MnistFile(entry.name, "0" * 64, entry.idx_sha256, entry.idx_bytes)  # the .gz sum differs
    download_mnist(str(tmp_path / "dl"), [serve(tmp_path / "www")], files=(recompressed,), progress=False)
    assert cache_files(tmp_path / "dl") == [entry.name]


def test_download_checksum_mismatch_leaves_nothing(tmp_path, serve):
    entry, content = synthetic_file(tmp_path)
    corrupt = bytearray(content)
    corrupt[20] ^= 0xFF
    (tmp_path / "www" / "mirror" / entry.name).write_bytes(gzip.compress(bytes(corrupt)))
    cache = tmp_path / "dl"
    with pytest.raises(SpeccError) as info:
        download_mnist(str(cache), [dead_mirror(), serve(tmp_path / "www")], files=(entry,), progress=False)
    text = info.value.diagnostics[0].format_text()
    assert info.value.diagnostics[0].code == "E075"
    assert "checksum mismatch" in text and "unreachable" in text and entry.gz_sha256 in text
    assert cache_files(cache) == []  # neither the file nor a temporary one


@needs_mnist
def test_mnist_downloads_into_the_cache_once(tmp_path, serve, monkeypatch):
    www = tmp_path / "www" / "mirror"
    www.mkdir(parents=True)
    for entry in MNIST_FILES:
        shutil.copy(os.path.join(MNIST_DIR, entry.name), www / entry.name)  # re-compressed: content-verified
    monkeypatch.delenv("SPECC_OFFLINE")
    monkeypatch.setenv("SPECC_MNIST_MIRRORS", f"{dead_mirror()} {serve(tmp_path / 'www')}")
    ds = load(tmp_path, "mnist", dtype="uint8", validation=0)
    assert ds.train.x.shape == (60000, 1, 28, 28) and ds.test.x.shape == (10000, 1, 28, 28)
    cache = tmp_path / "cache" / "specc" / "mnist"
    assert cache_files(cache) == sorted(e.name for e in MNIST_FILES)
    monkeypatch.setenv("SPECC_MNIST_MIRRORS", dead_mirror())
    assert len(load(tmp_path, "mnist", dtype="uint8", validation=0).train.y) == 60000  # from the cache


def test_progress_bar_redraws_on_a_terminal_and_prints_one_line_otherwise():
    import io

    live = io.StringIO()
    bar = ProgressBar("train-labels-idx1-ubyte.gz", 2_000_000, True, live)
    bar.update(1_000_000)
    bar.finish(2_000_000)
    assert live.getvalue().count("\r") == 2 and " 50%" in live.getvalue() and "100%" in live.getvalue()
    log = io.StringIO()
    bar = ProgressBar("x.gz", 0, None, log)  # not a terminal, size unknown
    bar.update(10)
    bar.finish(3_000_000)
    assert log.getvalue() == "downloading x.gz   3.0 MB\n"
    quiet = io.StringIO()
    ProgressBar("x.gz", 10, False, quiet).finish(10)
    assert quiet.getvalue() == ""
