"""The small Python packages specc needs, as wheels, for a machine with PyTorch but no package index.

    python benchmarks/nielsen/wheelhouse.py download [--dest benchmarks/nielsen/wheels]   # here, with network
    python benchmarks/nielsen/wheelhouse.py install --target DIR [--wheels DIR] [--all]   # there, offline

`download` fetches, for CPython 3.10, 3.11 and 3.12 on manylinux x86_64, binary wheels only (pip download
--only-binary=:all:), the packages below with their dependencies; NumPy and PyTorch are not among them
(they come with any PyTorch installation). `install` puts into DIR (add it to PYTHONPATH) the wheels of
every package of the list that this interpreter cannot import, dependencies included: with pip when the
interpreter has it (`pip install --no-index --find-links`), else by unpacking the wheels that match this
interpreter (a wheel is a zip archive of the installed files). `--all` installs every package of the
list, importable or not (to try the offline path on a machine that has them all).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
WHEELS = os.path.join(HERE, "wheels")
PYTHONS = ("3.10", "3.11", "3.12")
PLATFORM = "manylinux2014_x86_64"

# import name -> (distribution to ask pip for, distributions of its wheels and their dependencies)
PACKAGES = {
    "yaml": ("pyyaml", ("PyYAML",)),
    "safetensors": ("safetensors", ("safetensors",)),
    "tqdm": ("tqdm", ("tqdm",)),
    "jsonschema": ("jsonschema", ("jsonschema", "jsonschema_specifications", "referencing", "rpds_py", "attrs",
                                  "typing_extensions")),
    "pytest": ("pytest", ("pytest", "pluggy", "iniconfig", "packaging", "pygments", "exceptiongroup", "tomli")),
    "hypothesis": ("hypothesis", ("hypothesis", "attrs", "sortedcontainers", "exceptiongroup")),
}


def download(dest: str) -> int:
    os.makedirs(dest, exist_ok=True)
    # pip evaluates the dependencies' version markers for the running interpreter, not --python-version:
    # the backports that pytest and hypothesis need on 3.10 are asked for by name.
    wanted = [pip_name for pip_name, _ in PACKAGES.values()] + ["exceptiongroup", "tomli"]
    for version in PYTHONS:
        command = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--python-version", version,
                   "--platform", PLATFORM, "--platform", "manylinux_2_17_x86_64", "--platform", "any",
                   "--implementation", "cp", "--dest", dest, *wanted]
        print("$", " ".join(command), flush=True)
        if subprocess.run(command).returncode != 0:
            return 1
    total = sum(os.path.getsize(os.path.join(dest, n)) for n in os.listdir(dest))
    print(f"{len(os.listdir(dest))} wheels, {total / 2**20:.1f} MiB in {dest}")
    return 0


def missing(everything: bool) -> list[str]:
    return [name for name in PACKAGES if everything or importlib.util.find_spec(name) is None]


def wheel_fits(filename: str) -> bool:
    """Whether this interpreter can use the wheel: pure Python, or built for this CPython (or its stable ABI)
    on Linux x86_64."""
    parts = filename[:-4].split("-")
    if len(parts) < 5:
        return False
    python_tag, abi_tag, platform_tag = parts[-3], parts[-2], parts[-1]
    if platform_tag != "any" and not ("linux" in platform_tag and "x86_64" in platform_tag):
        return False
    here = sys.version_info
    tags = python_tag.split(".")
    if abi_tag == "none" and any(t in ("py3", f"py{here.major}{here.minor}") for t in tags):
        return True
    if abi_tag == "abi3":
        return any(re.fullmatch(r"cp3(\d+)", t) and int(t[3:]) <= here.minor for t in tags)
    return f"cp{here.major}{here.minor}" in tags


def distribution(filename: str) -> str:
    return filename.split("-")[0].lower().replace("-", "_")


def install(target: str, wheels: str, everything: bool) -> int:
    names = missing(everything)
    if not names:
        print("every package specc needs here is importable")
        return 0
    print("not importable here:", ", ".join(names), flush=True)
    os.makedirs(target, exist_ok=True)
    has_pip = importlib.util.find_spec("pip") is not None
    if has_pip:
        command = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", wheels, "--target", target,
                   "--quiet", *[PACKAGES[n][0] for n in names]]
        print("$", " ".join(command), flush=True)
        if subprocess.run(command).returncode == 0:
            return 0
        print("pip could not install them; unpacking the wheels instead", flush=True)
    wanted = {d.lower() for name in names for d in PACKAGES[name][1]}
    chosen = {}
    for filename in sorted(os.listdir(wheels)) if os.path.isdir(wheels) else []:
        if filename.endswith(".whl") and distribution(filename) in wanted and wheel_fits(filename):
            chosen.setdefault(distribution(filename), filename)  # one version of each
    backports = {"exceptiongroup", "tomli"} if sys.version_info >= (3, 11) else set()  # in 3.11's library
    absent = sorted(wanted - set(chosen) - backports)
    for filename in chosen.values():
        with zipfile.ZipFile(os.path.join(wheels, filename)) as archive:
            archive.extractall(target)
        print("unpacked", filename, flush=True)
    if absent:
        print("no wheel for this Python in", wheels, "for:", ", ".join(absent), flush=True)
        return 1
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("download", help="fill the wheelhouse (needs network)")
    d.add_argument("--dest", default=WHEELS)
    i = sub.add_parser("install", help="install what this interpreter lacks, offline")
    i.add_argument("--target", required=True, help="directory to install into (then put it on PYTHONPATH)")
    i.add_argument("--wheels", default=WHEELS)
    i.add_argument("--all", action="store_true", help="install every package of the list, importable or not")
    args = p.parse_args(argv)
    if args.command == "download":
        return download(args.dest)
    return install(args.target, args.wheels, args.all)


if __name__ == "__main__":
    sys.exit(main())
