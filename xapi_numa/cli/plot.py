"""A small SVG line chart, written by hand (no plotting library in dom0): enough to
show node load and locality over a simulated run."""
from typing import List, Sequence, Tuple

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def panel(title: str, series: Sequence[Tuple[str, Sequence[Tuple[float, float]]]], y_max: float,
          x_max: float, y_label: str, width: int = 640, height: int = 220) -> List[str]:
    """One chart's SVG elements, its origin at (0, 0)."""
    left, top, right, bottom = 50, 25, 110, 30
    w, h = width - left - right, height - top - bottom
    out = ['<text x="{}" y="16" font-size="13" font-weight="bold">{}</text>'.format(left, _escape(title)),
           '<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#999"/>'.format(left, top, w, h)]
    for i in range(5):
        y = top + h - h * i / 4
        out.append('<text x="{}" y="{:.1f}" font-size="10" text-anchor="end">{:.2g}</text>'.format(
            left - 4, y + 3, y_max * i / 4))
        out.append('<line x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}" stroke="#eee"/>'.format(left, left + w, y, y))
    out.append('<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>'.format(
        left + w / 2, height - 6, "simulated seconds (0 .. {:g})".format(x_max)))
    out.append('<text x="12" y="{}" font-size="10" transform="rotate(-90 12 {})" text-anchor="middle">{}</text>'
               .format(top + h / 2, top + h / 2, _escape(y_label)))
    for i, (name, points) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join("{:.1f},{:.1f}".format(left + w * x / x_max, top + h - h * min(y, y_max) / y_max)
                        for x, y in points)
        out.append('<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>'.format(colour, path))
        out.append('<text x="{}" y="{}" font-size="11" fill="{}">{}</text>'.format(
            left + w + 8, top + 12 + 14 * i, colour, _escape(name)))
    return out


def svg(panels: Sequence[List[str]], width: int = 640, height: int = 220) -> str:
    body = ['<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif">'.format(
        width, height * len(panels)), '<rect width="100%" height="100%" fill="white"/>']
    for i, elements in enumerate(panels):
        body.append('<g transform="translate(0,{})">'.format(height * i))
        body += elements
        body.append("</g>")
    body.append("</svg>")
    return "\n".join(body) + "\n"
