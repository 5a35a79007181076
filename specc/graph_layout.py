"""A layered (Sugiyama-style) layout for `specc graph` when Graphviz is not installed.

Top to bottom: each box sits in the rank of its longest path from the inputs;
an edge that skips ranks (a residual path) runs through one small invisible
"dummy" per skipped rank, so it gets a lane of its own beside the boxes it
passes instead of crossing them. Within a rank, boxes are ordered by the mean
position of their neighbours (a few sweeps down and up), keeping the members
of a cluster together; then x positions follow the neighbours too, by
weighted isotonic regression: a row is placed as close to its targets as
order and spacing allow, boxes weighing more than dummies so that the main
path stays straight and skip lanes move aside. Units are points; y grows
downwards. Pure Python, no drawing: `specc.graph_draw` draws the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

H_GAP = 18.0          # between neighbouring boxes in a rank
V_GAP = 16.0          # between ranks
CLUSTER_PAD = 9.0     # inside a cluster's border
DUMMY_WIDTH = 6.0     # the lane of an edge that skips ranks
DUMMY_WEIGHT = 1e-6   # a lane moves aside for boxes; it barely pulls on them
ORDER_SWEEPS = 6
PLACE_SWEEPS = 8
MARGIN = 12.0
MAX_LANE_STEPS = 50_000  # dummies over all skip edges: a network where every layer feeds every later one


class LayoutTooLarge(ValueError):
    pass


@dataclass
class Layout:
    centers: dict                 # box id -> (x, y)
    sizes: dict                   # box id -> (width, height)
    routes: dict                  # (from id, to id) -> [(x, y), ...] from the bottom of one to the top of the other
    cluster_rects: list = field(default_factory=list)  # (Cluster, x0, y0, x1, y1, depth), outermost first
    width: float = 0.0
    height: float = 0.0


@dataclass
class _Item:
    id: object                    # a box id, or ("dummy", edge, k)
    rank: int
    path: tuple                   # cluster ids, outermost first
    width: float
    height: float
    weight: float = 1.0
    preds: list = field(default_factory=list)
    succs: list = field(default_factory=list)
    x: float = 0.0
    y: float = 0.0
    order: float = 0.0


def layout(picture, sizes: dict, label_height: float, label_widths: dict | None = None) -> Layout:
    """Positions for every box of `picture`; `sizes` maps box id -> (width, height) in points,
    `label_widths` cluster id -> the width its label needs."""
    paths = _cluster_paths(picture.clusters)
    items = {bid: _Item(bid, 0, paths.get(bid, ()), *sizes[bid]) for bid in picture.boxes}
    for index, bid in enumerate(picture.boxes):
        items[bid].order = index
    _rank(picture, items)
    lanes = _add_dummies(picture, items)
    rows = _rows(items)
    _order(rows)
    _place(rows)
    return _finish(picture, items, rows, lanes, label_height, label_widths or {})


def _cluster_paths(clusters, prefix=()) -> dict:
    paths = {}
    for cluster in clusters:
        path = prefix + (cluster.id,)
        for bid in cluster.boxes:
            paths[bid] = path
        paths.update(_cluster_paths(cluster.children, path))
    return paths


def _rank(picture, items: dict) -> None:
    """Longest path from the inputs; the picture's boxes are in graph order, so one pass does."""
    for a, b in picture.edges:
        items[a].succs.append(items[b])
        items[b].preds.append(items[a])
    for bid in picture.boxes:
        item = items[bid]
        item.rank = max((p.rank + 1 for p in item.preds), default=0)


def _add_dummies(picture, items: dict) -> dict:
    """Split every edge that skips ranks into one-rank steps; returns edge -> its dummies, top down."""
    steps = sum(max(items[b].rank - items[a].rank - 1, 0) for a, b in picture.edges)
    if steps > MAX_LANE_STEPS:
        raise LayoutTooLarge(f"{steps:,} steps of edges that skip layers are more than this layout handles")
    lanes = {}
    for a, b in picture.edges:
        top, bottom = items[a], items[b]
        if bottom.rank - top.rank <= 1:
            continue
        path = _common(top.path, bottom.path)
        top.succs.remove(bottom)
        bottom.preds.remove(top)
        chain, previous = [], top
        for k, rank in enumerate(range(top.rank + 1, bottom.rank)):
            dummy = _Item(("dummy", (a, b), k), rank, path, DUMMY_WIDTH, 0.0, DUMMY_WEIGHT,
                          order=top.order + 0.5)
            previous.succs.append(dummy)
            dummy.preds.append(previous)
            items[dummy.id] = dummy
            chain.append(dummy)
            previous = dummy
        previous.succs.append(bottom)
        bottom.preds.append(previous)
        lanes[(a, b)] = chain
    return lanes


def _common(p: tuple, q: tuple) -> tuple:
    n = 0
    while n < min(len(p), len(q)) and p[n] == q[n]:
        n += 1
    return p[:n]


def _rows(items: dict) -> list:
    rows: list = [[] for _ in range(max(i.rank for i in items.values()) + 1)]
    for item in sorted(items.values(), key=lambda i: i.order):
        rows[item.rank].append(item)
    return rows


def _order(rows: list) -> None:
    """Barycentre sweeps; a cluster's members stay side by side in every rank."""
    for sweep in range(ORDER_SWEEPS):
        downwards = sweep % 2 == 0
        for row in (rows[1:] if downwards else rows[-2::-1]):
            for item in row:
                others = item.preds if downwards else item.succs
                if others:
                    item.order = sum(o.order for o in others) / len(others)
            row.sort(key=_cluster_key(row))
            for index, item in enumerate(row):
                item.order = index


def _cluster_key(row: list):
    """Sort by the mean order of each enclosing cluster's members in this row, outermost first."""
    means: dict = {}
    for depth in range(max((len(i.path) for i in row), default=0)):
        groups: dict = {}
        for item in row:
            if len(item.path) > depth:
                groups.setdefault(item.path[:depth + 1], []).append(item.order)
        means.update({k: sum(v) / len(v) for k, v in groups.items()})
    return lambda item: tuple(means[item.path[:d + 1]] for d in range(len(item.path))) + (item.order,)


def _gap(a: _Item, b: _Item) -> float:
    """Space between neighbours: more for each cluster border that runs between them."""
    shared = len(_common(a.path, b.path))
    return H_GAP + CLUSTER_PAD * (len(a.path) + len(b.path) - 2 * shared)


def _place(rows: list) -> None:
    for row in rows:
        x = 0.0
        for i, item in enumerate(row):
            if i:
                x += row[i - 1].width / 2 + _gap(row[i - 1], item) + item.width / 2
            item.x = x
    for sweep in range(PLACE_SWEEPS):
        downwards = sweep % 2 == 0
        for row in (rows[1:] if downwards else rows[-2::-1]):
            targets = [_target(item, item.preds if downwards else item.succs) for item in row]
            _fit_row(row, targets)
    _fit_down(rows)


def _fit_down(rows: list) -> None:
    for row in rows[1:]:
        _fit_row(row, [_target(item, item.preds) for item in row])


def _target(item: _Item, neighbours: list) -> float:
    """Where the neighbours pull a box: their weighted mean, so a skip lane barely moves a box."""
    if not neighbours:
        return item.x
    total = sum(n.weight for n in neighbours)
    return sum(n.x * n.weight for n in neighbours) / total


def _fit_row(row: list, targets: list) -> None:
    """Weighted isotonic regression: x as close to the targets as the order and the gaps allow."""
    blocks = []  # [first index, last index, position of the first item's centre, weight sum, weighted sum]
    offsets = [0.0]
    for i in range(1, len(row)):
        offsets.append(offsets[-1] + row[i - 1].width / 2 + _gap(row[i - 1], row[i]) + row[i].width / 2)
    for i, item in enumerate(row):
        w = item.weight
        block = [i, i, 0.0, w, w * (targets[i] - offsets[i])]
        block[2] = block[4] / block[3]
        while blocks and blocks[-1][2] >= block[2]:
            prev = blocks.pop()
            block = [prev[0], block[1], 0.0, prev[3] + block[3], prev[4] + block[4]]
            block[2] = block[4] / block[3]
        blocks.append(block)
    for first, last, start, _, _ in blocks:
        for i in range(first, last + 1):
            row[i].x = start + offsets[i]


def _finish(picture, items: dict, rows: list, lanes: dict, label_height: float, label_widths: dict) -> Layout:
    starts, ends = _cluster_spans(picture.clusters, items)
    heights = [max((i.height for i in row), default=0.0) for row in rows]
    tops, y = [], MARGIN
    for r in range(len(rows)):
        y += (V_GAP if r else 0.0) + starts.get(r, 0) * (label_height + CLUSTER_PAD) + ends.get(r - 1, 0) * CLUSTER_PAD
        tops.append(y)
        y += heights[r]
    for item in items.values():
        item.y = tops[item.rank] + heights[item.rank] / 2

    rects = []
    _cluster_rects(picture.clusters, items, tops, heights, label_height, label_widths, rects, 0)
    left = min([i.x - i.width / 2 for i in items.values()] + [r[1] for r in rects])
    right = max([i.x + i.width / 2 for i in items.values()] + [r[3] for r in rects])
    shift = MARGIN - left
    boxes = {bid: items[bid] for bid in picture.boxes}
    centers = {bid: (i.x + shift, i.y) for bid, i in boxes.items()}
    rects = [(c, x0 + shift, y0, x1 + shift, y1, d) for c, x0, y0, x1, y1, d in rects]
    routes = _routes(picture, items, lanes, tops, heights, shift)
    bottom = max(tops[-1] + heights[-1], max((r[4] for r in rects), default=0.0))
    return Layout(centers, {bid: (i.width, i.height) for bid, i in boxes.items()}, routes, rects,
                  right - left + 2 * MARGIN, bottom + MARGIN)


def _cluster_spans(clusters, items: dict) -> tuple[dict, dict]:
    """How many clusters start and end at each rank (their labels and borders need room)."""
    starts: dict = {}
    ends: dict = {}
    for cluster in _walk(clusters):
        ranks = [items[b].rank for b in cluster.all_boxes()]
        if ranks:
            starts[min(ranks)] = starts.get(min(ranks), 0) + 1
            ends[max(ranks)] = ends.get(max(ranks), 0) + 1
    return starts, ends


def _walk(clusters):
    for cluster in clusters:
        yield cluster
        yield from _walk(cluster.children)


def _cluster_rects(clusters, items, tops, heights, label_height, label_widths, out: list, depth: int) -> list:
    """Rectangles around each cluster's boxes, its lanes and its inner clusters; returns their extents."""
    extents = []
    for cluster in clusters:
        index = len(out)
        out.append(None)
        inner = _cluster_rects(cluster.children, items, tops, heights, label_height, label_widths, out, depth + 1)
        members = [items[b] for b in cluster.boxes]
        members += [i for i in items.values() if isinstance(i.id, tuple) and cluster.id in i.path]
        xs0 = [i.x - i.width / 2 for i in members] + [e[0] for e in inner]
        xs1 = [i.x + i.width / 2 for i in members] + [e[2] for e in inner]
        ys0 = [tops[i.rank] + (heights[i.rank] - i.height) / 2 for i in members if i.height] + [e[1] for e in inner]
        ys1 = [tops[i.rank] + (heights[i.rank] + i.height) / 2 for i in members if i.height] + [e[3] for e in inner]
        if not xs0 or not ys0:
            out.pop(index)
            continue
        x0, x1 = min(xs0) - CLUSTER_PAD, max(xs1) + CLUSTER_PAD
        short = label_widths.get(cluster.id, 0.0) + 2 * CLUSTER_PAD - (x1 - x0)
        if short > 0:  # widen to fit the label, on both sides
            x0, x1 = x0 - short / 2, x1 + short / 2
        rect = (x0, min(ys0) - CLUSTER_PAD - label_height, x1, max(ys1) + CLUSTER_PAD)
        out[index] = (cluster, *rect, depth)
        extents.append(rect)
    return extents


def _routes(picture, items: dict, lanes: dict, tops: list, heights: list, shift: float) -> dict:
    """Each edge as points: out of the bottom of its source, down its lane, into the top of its target.
    Several edges at one box get ports spread along its side, ordered by where they go."""
    out_ports = _ports(picture.edges, items, lanes, outgoing=True)
    in_ports = _ports(picture.edges, items, lanes, outgoing=False)
    routes = {}
    for a, b in picture.edges:
        top, bottom = items[a], items[b]
        points = [(top.x + out_ports[(a, b)], top.y + top.height / 2)]
        for dummy in lanes.get((a, b), ()):
            points += [(dummy.x, tops[dummy.rank]), (dummy.x, tops[dummy.rank] + heights[dummy.rank])]
        points.append((bottom.x + in_ports[(a, b)], bottom.y - bottom.height / 2))
        routes[(a, b)] = [(x + shift, y) for x, y in points]
    return routes


def _ports(edges: list, items: dict, lanes: dict, outgoing: bool) -> dict:
    by_box: dict = {}
    for a, b in edges:
        chain = lanes.get((a, b))
        if outgoing:
            other = chain[0] if chain else items[b]
            by_box.setdefault(a, []).append(((a, b), other.x))
        else:
            other = chain[-1] if chain else items[a]
            by_box.setdefault(b, []).append(((a, b), other.x))
    ports = {}
    for bid, ends in by_box.items():
        ends.sort(key=lambda e: e[1])
        spacing = min(14.0, items[bid].width / (len(ends) + 1))
        for k, (edge, _) in enumerate(ends):
            ports[edge] = (k - (len(ends) - 1) / 2) * spacing
    return ports
