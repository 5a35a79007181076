"""Draw a `specc.graph.Picture` with matplotlib (when Graphviz is not installed).

Text is measured with matplotlib's own font metrics, boxes get one common
width (so lanes of skip edges stay straight), `specc.graph_layout` places
them, and the figure is sized to the layout, 1 unit = 1 point, so text is
the same size whatever the network's size. matplotlib is imported here only.
"""

from __future__ import annotations

from specc.graph import BORDER, CLUSTER_FILL, RenderError, fill_of
from specc.graph_layout import LayoutTooLarge, layout

TITLE_PT = 9.0
LINE_PT = 8.0
LINE_SPACING = 1.3
BOX_PAD_X = 10.0
BOX_PAD_Y = 6.0
MAX_BOX_WIDTH = 260.0       # names longer than this are cut with an ellipsis
LABEL_PT = 8.5
PNG_DPI = 144
MAX_PIXELS = 32_000         # per side of a .png; Agg refuses images over 2^16 pixels
MIN_PNG_DPI = 72            # below this, 8 pt text is under 8 pixels: refuse rather than draw it unreadable
MAX_BOXES = 2_500           # more takes minutes to draw; Graphviz or .dot is the better tool then
FONT = "DejaVu Sans"        # shipped with matplotlib: the same metrics everywhere


def draw(picture, path: str, fmt: str) -> None:
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise RenderError("drawing .svg or .png needs Graphviz's `dot` program or matplotlib, and neither is "
                          "installed", "pip install matplotlib (or install Graphviz), or write a .dot file") from None

    if len(picture.boxes) > MAX_BOXES:
        raise RenderError(f"the picture has {len(picture.boxes)} boxes, more than the {MAX_BOXES} specc draws "
                          "without Graphviz", "write .dot, install Graphviz, or draw it without --expand")
    measure = _Measure()
    sizes = {bid: _box_size(box, measure) for bid, box in picture.boxes.items()}
    width = min(max(w for w, _ in sizes.values()), MAX_BOX_WIDTH)
    sizes = {bid: (width if box.kind in ("layer", "block", "preprocess") else max(w, width * 0.6), h)
             for (bid, (w, h)), box in zip(sizes.items(), picture.boxes.values())}
    labels = {c.id: measure.width(c.label) * LABEL_PT / LINE_PT for c in _all_clusters(picture.clusters)}
    try:
        placed = layout(picture, sizes, LABEL_PT * 1.6, labels)
    except LayoutTooLarge as exc:
        raise RenderError(str(exc), "write .dot, or install Graphviz") from None

    dpi = PNG_DPI if fmt == "png" else 72
    if fmt == "png" and max(placed.width, placed.height) / 72 * dpi > MAX_PIXELS:
        dpi = MAX_PIXELS * 72 / max(placed.width, placed.height)
        if dpi < MIN_PNG_DPI:  # the text would be too small to read
            hint = "write .svg (no size limit) or .dot" + ("" if _collapsed(picture) else
                                                           ", or draw it without --expand")
            raise RenderError(f"the picture of {len(picture.boxes)} boxes is too tall for a readable .png "
                              f"({placed.height / 72:.0f} inches)", hint)
    with matplotlib.rc_context({"svg.fonttype": "none", "font.family": FONT, "svg.hashsalt": "specc"}):
        fig = Figure(figsize=(placed.width / 72, placed.height / 72))
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, placed.width)
        ax.set_ylim(placed.height, 0)  # y grows downwards, as in the layout
        ax.set_axis_off()
        _draw_clusters(ax, placed)
        _draw_edges(ax, placed)
        _draw_boxes(ax, picture, placed, width, measure)
        try:
            fig.savefig(path, format=fmt, dpi=dpi, metadata=_metadata(fmt))
        except OSError as exc:
            raise RenderError(f"cannot write {path}: {exc.strerror or exc}") from None


def _collapsed(picture) -> bool:
    """No block clusters: drawing without --expand would not make it smaller."""
    return not any(c.kind == "block" for c in _all_clusters(picture.clusters))


def _all_clusters(clusters) -> list:
    found = []
    for cluster in clusters:
        found += [cluster] + _all_clusters(cluster.children)
    return found


def _metadata(fmt: str) -> dict:
    # No dates or versions in the file: the same spec draws the same bytes.
    return {"Date": None} if fmt == "svg" else {"Software": None}


class _Measure:
    """Widths of text in points, from the font's metrics (no renderer needed)."""

    def __init__(self):
        from matplotlib.font_manager import FontProperties
        from matplotlib.textpath import TextToPath

        self.props = {False: FontProperties(family=FONT, size=LINE_PT),
                      True: FontProperties(family=FONT, size=TITLE_PT, weight="bold")}
        self.fonts = TextToPath()
        self.cache: dict = {}

    def width(self, text: str, bold: bool = False) -> float:
        key = (text, bold)
        if key not in self.cache:
            self.cache[key] = self.fonts.get_text_width_height_descent(text, self.props[bold], ismath=False)[0]
        return self.cache[key]

    def fit(self, text: str, width: float, bold: bool = False) -> str:
        """`text`, cut with an ellipsis to fit `width`."""
        if self.width(text, bold) <= width:
            return text
        while len(text) > 1 and self.width(text + "…", bold) > width:
            text = text[:-1]
        return text + "…"


def _box_size(box, measure: _Measure) -> tuple[float, float]:
    width = max([measure.width(box.title, True)] + [measure.width(line) for line in box.lines])
    height = TITLE_PT * LINE_SPACING + len(box.lines) * LINE_PT * LINE_SPACING
    return width + 2 * BOX_PAD_X, height + 2 * BOX_PAD_Y


def _draw_clusters(ax, placed) -> None:
    from matplotlib.patches import FancyBboxPatch

    for cluster, x0, y0, x1, y1, depth in placed.cluster_rects:
        ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0,rounding_size=7",
                                    facecolor=CLUSTER_FILL[cluster.kind], edgecolor="#9aa7b6", linewidth=0.8,
                                    zorder=1 + depth))
        # Above the edges, on the cluster's colour: a line passing under a label does not cross its text.
        ax.text(x0 + 7, y0 + 4, cluster.label, fontsize=LABEL_PT, color="#44505e", va="top", ha="left",
                style="italic", zorder=25,
                bbox=dict(boxstyle="square,pad=0.1", facecolor=CLUSTER_FILL[cluster.kind], edgecolor="none"))


def _draw_edges(ax, placed) -> None:
    from matplotlib.patches import FancyArrowPatch
    from matplotlib.path import Path

    for points in placed.routes.values():
        vertices, codes = [points[0]], [Path.MOVETO]
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            if x0 == x1:  # a straight run down a lane
                vertices.append((x1, y1))
                codes.append(Path.LINETO)
            else:  # leave and arrive vertically: an S-curve between the two ranks
                middle = (y0 + y1) / 2
                vertices += [(x0, middle), (x1, middle), (x1, y1)]
                codes += [Path.CURVE4] * 3
        ax.add_patch(FancyArrowPatch(path=Path(vertices, codes), arrowstyle="-|>", mutation_scale=9,
                                     color=BORDER, linewidth=0.9, shrinkA=0, shrinkB=0, zorder=20))


def _draw_boxes(ax, picture, placed, width: float, measure: _Measure) -> None:
    from matplotlib.patches import FancyBboxPatch, Polygon

    for bid, box in picture.boxes.items():
        x, y = placed.centers[bid]
        w, h = placed.sizes[bid]
        x0, y0 = x - w / 2, y - h / 2
        style = dict(facecolor=fill_of(box), edgecolor=BORDER, linewidth=0.9, zorder=30)
        if box.kind == "input":  # a pentagon pointing into the network
            tip = min(8.0, h / 3)
            ax.add_patch(Polygon([(x0, y0), (x0 + w, y0), (x0 + w, y0 + h - tip), (x, y0 + h),
                                  (x0, y0 + h - tip)], closed=True, **style))
        elif box.kind == "output":  # a pill
            ax.add_patch(FancyBboxPatch((x0, y0), w, h, boxstyle=f"round,pad=0,rounding_size={h / 2}", **style))
        else:
            ax.add_patch(FancyBboxPatch((x0, y0), w, h, boxstyle="round,pad=0,rounding_size=4", **style))
            if box.kind == "block":  # a second border: this box stands for several layers
                ax.add_patch(FancyBboxPatch((x0 + 2.5, y0 + 2.5), w - 5, h - 5,
                                            boxstyle="round,pad=0,rounding_size=3", facecolor="none",
                                            edgecolor=BORDER, linewidth=0.6, zorder=31))
        inner = w - 2 * BOX_PAD_X + 4
        top = y0 + BOX_PAD_Y - (2.0 if box.kind == "input" else 0.0)
        ax.text(x, top, measure.fit(box.title, inner, True), fontsize=TITLE_PT, fontweight="bold",
                ha="center", va="top", color="#1f2933", zorder=32)
        for k, line in enumerate(box.lines):
            color = "#6b7683" if line.endswith(" params") else "#2f3b48"
            ax.text(x, top + TITLE_PT * LINE_SPACING + k * LINE_PT * LINE_SPACING, measure.fit(line, inner),
                    fontsize=LINE_PT, ha="center", va="top", color=color, zorder=32)
