"""`specc graph`: the picture's structure (DOT), the fallback layout's geometry, and real .svg/.png files."""

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from conftest import ROOT, SPECS, zoo_specs
from specc.cli import main
from specc.compiler import compile_spec
from specc.graph import build_picture, to_dot, write_graph
from specc.graph_layout import layout
from specc.grouping import use_path
from specc.limits import DEFAULT_LIMITS

NESTED = """\
specc: 1
name: nested
inputs:
  image: {shape: [3, 16, 16]}
blocks:
  branchy:
    params: {c: null}
    network:
      - {name: a, conv: {filters: "${c}", kernel: 1}}
      - {name: b, conv: {filters: "${c}", kernel: 3, padding: same}, from: input}
      - {name: pool, maxpool: {size: 3, stride: 1, padding: 1}, from: input}
      - {name: cat, concat: 1, from: [a, b, pool]}
  stage:
    params: {c: null}
    network:
      - branchy: {c: "${c}"}
      - conv: {filters: "${c}", kernel: 1, activation: relu}
      - {name: res, add: {}, from: [conv_2, input]}
network:
  - conv: {filters: 8, kernel: 3, padding: same}
  - {name: s, stage: {c: 8}, repeat: 2}
  - {name: c, conv: {filters: 8, kernel: 3, padding: same}, repeat: 2}
  - global_avgpool
  - dense: 10
"""


def compiled(name):
    return compile_spec(os.path.join(SPECS, name), DEFAULT_LIMITS)


@pytest.fixture
def nested(tmp_path):
    path = tmp_path / "nested.yaml"
    path.write_text(NESTED)
    return compile_spec(str(path), DEFAULT_LIMITS)


def dot_edges(dot: str) -> set:
    return set(re.findall(r'^\s*"([^"]+)" -> "([^"]+)";$', dot, re.M))


def dot_nodes(dot: str) -> set:
    return set(re.findall(r'^\s*"([^"]+)" \[label=', dot, re.M))


@pytest.mark.parametrize("name", zoo_specs())
def test_dot_structure_of_every_zoo_spec(name):
    c = compiled(name)
    graph = c.graph
    dot = to_dot(build_picture(graph, c.spec, expand=True))
    assert dot.startswith(f'digraph "{graph.name}" {{') and dot.rstrip().endswith("}")
    assert dot.count("{") == dot.count("}")
    nodes, edges = dot_nodes(dot), dot_edges(dot)
    # Every node of the IR is drawn, with its inputs and outputs as boxes of their own.
    assert {n.name for n in graph.nodes} | {"in:" + v.name for v in graph.inputs} | \
        {"out:" + k for k in graph.outputs} == nodes
    # One edge per input of each node (none repeated), plus one per output.
    produced = {n.output.name: n.name for n in graph.nodes} | {v.name: "in:" + v.name for v in graph.inputs}
    wanted = {(produced[v.name], n.name) for n in graph.nodes for v in n.inputs if v.name in produced}
    wanted |= {(produced[v.name], "out:" + k) for k, v in graph.outputs.items()}
    assert edges == wanted
    for v in graph.inputs:
        assert re.search(rf'"in:{re.escape(v.name)}" \[label=<<b>{re.escape(v.name)}</b>.*shape=invhouse', dot)
    for k in graph.outputs:
        assert re.search(rf'"out:{re.escape(k)}" \[label=.*shape=oval', dot)
    # Each layer shows its name, op, output shape and (when it has any) its parameters.
    for node in graph.nodes:
        if node.category == "layer" and not use_path(node):
            line = next(line for line in dot.splitlines() if line.strip().startswith(f'"{node.name}" [label='))
            assert f"<b>{node.name}</b><br/>{node.op}" in line
            assert "×".join(str(d) for d in node.output.type.shape[1:]) in line
    if any(n.category != "layer" for n in graph.nodes):
        assert 'subgraph "cluster_preprocess"' in dot


def test_dot_of_every_zoo_spec_collapsed_has_no_dangling_edge():
    for name in zoo_specs():
        c = compiled(name)
        dot = to_dot(build_picture(c.graph, c.spec))
        nodes = dot_nodes(dot)
        for a, b in dot_edges(dot):
            assert a in nodes and b in nodes, (name, a, b)


def test_block_uses_are_clusters_when_expanded_and_boxes_when_not():
    c = compiled("resnet_small.yaml")
    expanded = to_dot(build_picture(c.graph, c.spec, expand=True))
    for use, kind in (("stage1.1", "residual"), ("stage3.2", "residual"), ("down2", "projection")):
        assert f'subgraph "cluster_{use}" {{' in expanded
        assert f'label="{use} · {kind}"' in expanded
    block = expanded[expanded.index('subgraph "cluster_stage1.1"'):]
    block = block[:block.index("}")]
    assert '"stage1.1.conv_1" [label=<<b>conv_1</b><br/>conv 3×3<br/>16×32×32<br/>2,304 params>' in block

    collapsed = to_dot(build_picture(c.graph, c.spec))
    assert 'subgraph "cluster_stage1.1"' not in collapsed
    assert ('"use:stage1.1" [label=<<b>stage1.1</b><br/>residual · 7 layers<br/>16×32×32<br/>4,672 params>'
            in collapsed) and "peripheries=2" in collapsed
    assert ("use:stage1.1", "use:stage1.2") in dot_edges(collapsed)


def test_residual_edge_in_resnet_small():
    c = compiled("resnet_small.yaml")
    edges = dot_edges(to_dot(build_picture(c.graph, c.spec, expand=True)))
    # The identity shortcut: the block's input goes straight to its `add`, around the two convolutions.
    assert ("relu_3", "stage1.1.sum") in edges and ("stage1.1.bn2", "stage1.1.sum") in edges
    assert ("stage1.1.relu_7", "stage1.2.sum") in edges


def test_nested_block_uses_are_nested_clusters(nested):
    picture = build_picture(nested.graph, nested.spec, expand=True)
    (outer,) = [c for c in picture.clusters if c.id == "cluster_s.1"]
    assert outer.label == "s.1 · stage"
    assert [c.label for c in outer.children] == ["branchy_1 · branchy"]
    assert set(outer.children[0].boxes) == {"s.1.branchy_1.a", "s.1.branchy_1.b", "s.1.branchy_1.pool",
                                            "s.1.branchy_1.cat"}
    # A repeated plain layer is two layers, not a block use.
    assert "c.1" in picture.boxes and "c.2" in picture.boxes
    assert not any(cl.id.startswith("cluster_c") for cl in picture.clusters)


def box_sizes(picture):
    """Sizes as the drawing makes them (close enough for geometry): a common width, height per line."""
    width = max(6 * max(len(t) for t in (b.title, *b.lines)) + 20 for b in picture.boxes.values())
    return {bid: (width, 12 + 11 * (1 + len(b.lines))) for bid, b in picture.boxes.items()}


def overlap(a, b, slack=0.5):
    return a[0] < b[2] - slack and b[0] < a[2] - slack and a[1] < b[3] - slack and b[1] < a[3] - slack


def rect_of(placed, bid):
    (x, y), (w, h) = placed.centers[bid], placed.sizes[bid]
    return (x - w / 2, y - h / 2, x + w / 2, y + h / 2)


@pytest.mark.parametrize("name", zoo_specs() + ["nested"])
@pytest.mark.parametrize("expand", [False, True])
def test_fallback_layout_has_no_overlaps(name, expand, nested):
    c = nested if name == "nested" else compiled(name)
    picture = build_picture(c.graph, c.spec, expand=expand)
    placed = layout(picture, box_sizes(picture), 14.0)
    rects = {bid: rect_of(placed, bid) for bid in picture.boxes}
    ids = list(rects)
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            assert not overlap(rects[a], rects[b]), (a, b)
    for cluster, x0, y0, x1, y1, _ in placed.cluster_rects:
        inside = set(cluster.all_boxes())
        for bid, r in rects.items():
            if bid in inside:
                assert x0 <= r[0] and r[2] <= x1 and y0 <= r[1] and r[3] <= y1, (cluster.id, bid)
            else:
                assert not overlap((x0, y0, x1, y1), r), (cluster.id, bid)
    for (a, b), points in placed.routes.items():
        assert points[0][1] == pytest.approx(rects[a][3]) and points[-1][1] == pytest.approx(rects[b][1])
        for (xa, ya), (xb, yb) in zip(points[1:-1], points[2:-1]):
            if xa == xb:  # a lane: a straight run past the ranks an edge skips, through no box
                lane = (xa - 0.1, min(ya, yb), xa + 0.1, max(ya, yb))
                assert not any(overlap(lane, r, 0) for r in rects.values()), (a, b)
    assert placed.width > 0 and placed.height > 0


def test_skip_edges_get_lanes_beside_the_layers():
    c = compiled("resnet_small.yaml")
    picture = build_picture(c.graph, c.spec, expand=True)
    placed = layout(picture, box_sizes(picture), 14.0)
    route = placed.routes[("relu_3", "stage1.1.sum")]
    assert len(route) > 2  # it runs down a lane, not straight through conv_1 ... bn2
    main_x = placed.centers["stage1.1.conv_1"][0]
    assert all(abs(x - main_x) > placed.sizes["stage1.1.conv_1"][0] / 2 for x, _ in route[1:-1])
    # The main path stays one straight column.
    xs = {round(placed.centers[n][0], 2) for n in ("stem", "stage1.1.conv_1", "stage1.1.sum", "dense_10")}
    assert len(xs) == 1


def test_svg_and_png_with_the_matplotlib_fallback(tmp_path):
    pytest.importorskip("matplotlib", reason="the fallback drawing needs matplotlib")
    c = compiled("resnet_small.yaml")
    svg, png = tmp_path / "r.svg", tmp_path / "r.png"
    assert write_graph(c.graph, str(svg), spec=c.spec, expand=True, engine="matplotlib") == "drawn by matplotlib"
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    texts = {t.text for t in root.iter() if t.tag.endswith("text")}
    assert {"stage1.1.sum", "sum"} & texts and "stage1.1 · residual" in texts and "preprocessing" in texts
    assert "2,304 params" in texts and "conv 3×3" in texts
    assert write_graph(c.graph, str(png), spec=c.spec, engine="matplotlib") == "drawn by matplotlib"
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert 150 < width < 1500 and 1000 < height < 6000  # 20 boxes: a readable size, not a poster


def test_auto_engine_falls_back_to_matplotlib_without_graphviz(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="the fallback drawing needs matplotlib")
    import specc.graph

    monkeypatch.setattr(specc.graph.shutil, "which", lambda program: None)
    c = compiled("lenet5.yaml")
    assert write_graph(c.graph, str(tmp_path / "l.png"), spec=c.spec) == "drawn by matplotlib"


def test_without_graphviz_or_matplotlib_svg_is_refused_with_a_hint(tmp_path, monkeypatch, capsys):
    import specc.graph

    monkeypatch.setattr(specc.graph.shutil, "which", lambda program: None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    assert main(["graph", os.path.join(SPECS, "lenet5.yaml"), "-o", str(tmp_path / "l.svg")]) == 1
    err = capsys.readouterr().err
    assert "needs Graphviz's `dot` program or matplotlib" in err and "hint: pip install matplotlib" in err
    assert main(["graph", os.path.join(SPECS, "lenet5.yaml"), "-o", str(tmp_path / "l.dot")]) == 0


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's `dot` program is not installed")
def test_svg_and_png_with_graphviz(tmp_path):
    c = compiled("resnet_small.yaml")
    svg, png = tmp_path / "r.svg", tmp_path / "r.png"
    assert write_graph(c.graph, str(svg), spec=c.spec, expand=True) == "drawn by Graphviz"
    text = svg.read_text()
    assert "<svg" in text and "cluster_stage1.1" in text and "stage1.1 · residual" in text
    assert write_graph(c.graph, str(png), spec=c.spec, engine="graphviz") == "drawn by Graphviz"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_writes_dot_and_refuses_a_bad_extension(tmp_path, capsys):
    out = tmp_path / "lenet5.dot"
    assert main(["graph", os.path.join(SPECS, "lenet5.yaml"), "-o", str(out)]) == 0
    assert out.read_text().startswith('digraph "lenet5"')
    assert main(["graph", os.path.join(SPECS, "lenet5.yaml"), "-o", str(tmp_path / "lenet5.jpg")]) == 2
    err = capsys.readouterr().err
    assert "specc graph: error: cannot tell the picture format from" in err and ".svg, .png or .dot" in err
    assert not (tmp_path / "lenet5.jpg").exists()


def test_cli_reports_an_invalid_spec_with_its_location(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("specc: 1\nname: bad\ninputs: {x: {shape: [4]}}\nnetwork:\n  - desne: 10\n")
    assert main(["graph", str(bad), "-o", str(tmp_path / "bad.svg")]) == 1
    assert f"{bad}:5:5: error[E020]" in capsys.readouterr().err


def test_dot_output_loads_neither_matplotlib_nor_torch(tmp_path):
    code = ("import sys\n"
            "from specc.cli import main\n"
            f"assert main(['graph', {os.path.join(SPECS, 'resnet_small.yaml')!r}, '-o', {str(tmp_path / 'r.dot')!r},"
            " '--expand']) == 0\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'matplotlib'))\n"
            "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
