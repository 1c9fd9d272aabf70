"""Draw Resources/Icons/UNetPlusPlus.png (128x128): the UNet++ node grid X(i, j).

Nodes sit at column i + 2j and row i, as in the paper's figure (Zhou et al., IEEE TMI 2019,
Fig. 1): the encoder runs down the left edge, the nested decoders fill the triangle, dense skip
connections run along each row, and the nodes of each pruned depth L1..L4 share a colour.

    python UNetPlusPlus/Resources/make_icon.py
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 128
SCALE = 4  # draw large, then downsample for smooth edges
DEPTH_COLOURS = {1: (255, 196, 61), 2: (255, 128, 66), 3: (235, 72, 104), 4: (170, 82, 214)}
ENCODER = (120, 200, 255)


def node_position(i: int, j: int) -> tuple[float, float]:
    left, top, dx, dy = 20, 26, 11, 19
    return ((left + (i + 2 * j) * dx) * SCALE, (top + i * dy) * SCALE)


def draw() -> Image.Image:
    big = SIZE * SCALE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    canvas = ImageDraw.Draw(image)
    canvas.rounded_rectangle((0, 0, big - 1, big - 1), radius=22 * SCALE, fill=(24, 38, 66, 255))
    nodes = [(i, j) for i in range(5) for j in range(5 - i)]
    line = (150, 170, 200, 255)
    for i, j in nodes:
        x, y = node_position(i, j)
        if j == 0 and i > 0:  # encoder: down-sampling
            canvas.line((*node_position(i - 1, 0), x, y), fill=ENCODER + (255,), width=3 * SCALE)
        if j > 0:  # up-sampling from the level below, and dense skips along the row
            canvas.line((*node_position(i + 1, j - 1), x, y), fill=line, width=2 * SCALE)
            for k in range(j):
                canvas.line((*node_position(i, k), x, y), fill=line, width=SCALE)
    radius = 5 * SCALE
    for i, j in nodes:
        x, y = node_position(i, j)
        colour = ENCODER if j == 0 else DEPTH_COLOURS[i + j]
        canvas.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour + (255,))
    return image.resize((SIZE, SIZE), Image.LANCZOS)


if __name__ == "__main__":
    target = Path(__file__).resolve().parent / "Icons" / "UNetPlusPlus.png"
    draw().save(target)
    print("wrote", target)
