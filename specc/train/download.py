"""Downloading MNIST into the cache: public mirrors, SHA-256 checks, atomic writes.

A file is accepted when the downloaded .gz has the published SHA-256 of the
original archive, or, for a mirror that re-compressed it, when its
decompressed IDX content has the SHA-256 of the original content. Anything
else is deleted: the cache only ever holds verified files, each written to a
temporary name first and renamed into place.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass

from specc.diagnostics import Span, error


@dataclass(frozen=True)
class MnistFile:
    name: str         # as on the mirrors
    gz_sha256: str    # of the original .gz (yann.lecun.com, mirrored byte for byte by both default mirrors)
    idx_sha256: str   # of the decompressed IDX content
    idx_bytes: int


MNIST_FILES = (
    MnistFile("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
              "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 47_040_016),
    MnistFile("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
              "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60_008),
    MnistFile("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
              "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 7_840_016),
    MnistFile("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
              "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10_008),
)
DEFAULT_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                   "https://storage.googleapis.com/cvdf-datasets/mnist/")
MAX_DOWNLOAD_BYTES = 64 << 20  # the largest file is 9.9 MB compressed; a mirror sending more is wrong
CHUNK = 1 << 16


def mnist_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "specc", "mnist")


def configured_mirrors() -> tuple:
    """SPECC_MNIST_MIRRORS (URLs separated by commas or spaces) or the default mirrors."""
    value = os.environ.get("SPECC_MNIST_MIRRORS", "")
    mirrors = tuple(m for m in value.replace(",", " ").split() if m)
    return mirrors or DEFAULT_MIRRORS


def download_mnist(cache_dir: str | None = None, mirrors=None, *, span: Span | None = None,
                   progress: bool | None = None, timeout: float = 30.0, files=MNIST_FILES,
                   looked: str = "") -> str:
    """Make sure the four MNIST .gz files (`files`) are in `cache_dir`; returns the directory.

    Files already there are kept; each missing one is tried on every mirror in
    turn until one serves it with a valid checksum. `looked`: where the files were
    looked for first, for the message when the download fails too."""
    cache_dir = cache_dir or mnist_cache_dir()
    mirrors = tuple(mirrors) if mirrors else configured_mirrors()
    span = span or Span("<mnist>")
    for m in mirrors:
        if not m.startswith(("http://", "https://")):
            raise error("E075", f"MNIST mirror `{m}` is not an http(s) URL", span,
                        "SPECC_MNIST_MIRRORS lists base URLs such as https://example.org/mnist/")
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError as exc:
        raise error("E075", f"cannot create the MNIST cache directory {cache_dir}: {exc.strerror or exc}", span,
                    "set XDG_CACHE_HOME to a writable directory, or pass --data DIR") from None
    for entry in files:
        if os.path.isfile(os.path.join(cache_dir, entry.name)):
            continue
        failures = []
        for mirror in mirrors:
            reason = _fetch_verified(mirror.rstrip("/") + "/" + entry.name, entry, cache_dir, progress, timeout)
            if reason is None:
                break
            failures.append(f"{mirror}: {reason}")
        else:
            before = f"MNIST is not in {looked}, and " if looked else ""
            raise error("E075", f"{before}could not download {entry.name}: " + "; ".join(failures), span,
                        "check the network, set SPECC_MNIST_MIRRORS, or pass --data DIR with the MNIST files")
    return cache_dir


def _fetch_verified(url: str, entry: MnistFile, cache_dir: str, progress, timeout: float) -> str | None:
    """Download `url` into the cache as `entry.name`; returns why it failed, or None."""
    fd, tmp = tempfile.mkstemp(prefix=".download-", suffix=".part", dir=cache_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            reason, gz_sha = _stream(url, out, entry.name, progress, timeout)
        if reason is None:
            reason = _check(tmp, gz_sha, entry)
        if reason is None:
            os.replace(tmp, os.path.join(cache_dir, entry.name))
        return reason
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _stream(url: str, out, name: str, progress, timeout: float):
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0)
            bar = ProgressBar(name, total, progress)
            done = 0
            while chunk := response.read(CHUNK):
                done += len(chunk)
                if done > MAX_DOWNLOAD_BYTES:
                    return f"sent more than {MAX_DOWNLOAD_BYTES >> 20} MB", None
                digest.update(chunk)
                out.write(chunk)
                bar.update(done)
            bar.finish(done)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}", None
    except urllib.error.URLError as exc:
        return f"unreachable ({exc.reason})", None
    except (OSError, ValueError) as exc:  # timeouts, resets, malformed responses
        return f"download failed ({exc})", None
    return None, digest.hexdigest()


def _check(path: str, gz_sha: str, entry: MnistFile) -> str | None:
    if gz_sha == entry.gz_sha256:
        return None
    content = hashlib.sha256()
    size = 0
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                size += len(chunk)
                if size > entry.idx_bytes:
                    break
                content.update(chunk)
    except (OSError, EOFError, zlib.error):
        return f"checksum mismatch: SHA-256 {gz_sha} is not the published {entry.gz_sha256}, " \
               "and the file is not a valid gzip"
    if size == entry.idx_bytes and content.hexdigest() == entry.idx_sha256:
        return None  # re-compressed by the mirror, same content
    return f"checksum mismatch: SHA-256 {gz_sha} is not the published {entry.gz_sha256}, " \
           "and the decompressed content differs from the original too"


class ProgressBar:
    """One line on stderr: redrawn in place on a terminal, a single line when done otherwise."""

    def __init__(self, name: str, total: int, enabled: bool | None, stream=None):
        self.stream = stream or sys.stderr
        self.name, self.total = name, total
        self.live = self.stream.isatty() if enabled is None else enabled
        self.quiet = enabled is False
        self.last = 0.0

    def update(self, done: int) -> None:
        now = time.monotonic()
        if self.live and now - self.last >= 0.1:
            self.last = now
            self.stream.write("\r" + self._line(done))
            self.stream.flush()

    def finish(self, done: int) -> None:
        if self.quiet:
            return
        self.stream.write(("\r" if self.live else "") + self._line(done) + "\n")
        self.stream.flush()

    def _line(self, done: int) -> str:
        mb = f"{done / 1e6:5.1f}"
        if not self.total:
            return f"downloading {self.name} {mb} MB"
        frac = min(done / self.total, 1.0)
        bar = "#" * int(frac * 30)
        return f"downloading {self.name} [{bar:<30}] {mb}/{self.total / 1e6:.1f} MB {frac:4.0%}"
