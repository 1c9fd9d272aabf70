"""PNG preview of a segmentation: axial, coronal and sagittal slices with segments overlaid.

Slices are cut from the volume resampled onto an axis-aligned LPS grid with isotropic voxels, so
oblique or flipped inputs look the way a radiologist expects: axial in radiological convention
(patient left on the image right, anterior up), coronal and sagittal with superior up.

The run's warnings about the input and the result (anatomy, volume, click, header) are drawn
in an amber banner above the slices, so whoever looks at the image sees them (the preview
carried none of what the command line printed: review cli20), and kept as the PNG text chunk
``unetpp_warnings`` (one per line) for tools. A preview without warnings has no banner.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from .engine.volume import LabelVolume, Volume, canonical_grid, resample_volume

PANEL_SIZE = 320
OVERLAY_ALPHA = 0.45
#: The warnings banner: black text on amber, one line per LINE_HEIGHT pixels.
WARNING_FILL = (255, 191, 0)
LINE_HEIGHT = 14
#: The PNG text chunk holding the warnings, one per line.
WARNINGS_KEY = "unetpp_warnings"


def _drawable(text: str, font) -> str:
    """``text`` as ``font`` can draw it: a bitmap font (Pillow before 10.1) takes Latin-1 only."""
    if isinstance(font, ImageFont.FreeTypeFont):
        return text
    return text.encode("latin-1", "replace").decode("latin-1")


def _warning_lines(draw: ImageDraw.ImageDraw, warnings: Sequence[str], width: int) -> list[str]:
    """The banner's lines: a heading, then each warning wrapped to ``width`` pixels."""
    if not warnings:
        return []
    font = draw.getfont()
    count = len(warnings)
    heading = f"WARNING{'S' if count > 1 else ''} ({count}): check before use"
    per_char = max(1.0, draw.textlength("x" * 40, font=font) / 40)
    columns = max(20, int((width - 12) / per_char) - 2)
    lines = [heading]
    for warning in warnings:
        wrapped = textwrap.wrap(" ".join(warning.split()), columns - 2) or [""]
        lines += ["- " + wrapped[0]] + ["  " + line for line in wrapped[1:]]
    return [_drawable(line, font) for line in lines]


def _window(image: np.ndarray, window: Optional[Sequence[float]]) -> np.ndarray:
    if window is None:
        low, high = np.percentile(image, [1, 99]) if image.size else (0.0, 1.0)
    else:
        low, high = window
    scaled = (image - low) / max(float(high - low), 1e-6)
    return (np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)


def _isotropic(volume: Volume, labels: LabelVolume) -> tuple[np.ndarray, np.ndarray]:
    spacing = float(min(volume.spacing))
    extent = max(n * s for n, s in zip(volume.array.shape[1:][::-1], volume.spacing))
    spacing = max(spacing, extent / 256.0)  # keep the preview cheap on big volumes
    grid = canonical_grid(volume, (spacing, spacing, spacing))
    image = resample_volume(volume, grid, interpolator="linear").array[0]
    label_as_volume = Volume(
        array=labels.array[None].astype(np.float32),
        spacing=labels.spacing,
        origin=labels.origin,
        direction=labels.direction,
    )
    label_array = resample_volume(label_as_volume, grid, interpolator="nearest", default=0.0)
    return image, np.rint(label_array.array[0]).astype(np.int32)


def _focus(label_array: np.ndarray) -> tuple[int, int, int]:
    """The foreground's centre of mass (z, y, x), or the volume centre when it is empty."""
    foreground = np.argwhere(label_array > 0)
    if len(foreground) == 0:
        return tuple(n // 2 for n in label_array.shape)
    return tuple(int(round(c)) for c in foreground.mean(axis=0))


def _panel(gray: np.ndarray, label_slice: np.ndarray, colors: dict) -> Image.Image:
    rgb = np.repeat(gray[..., None], 3, axis=-1).astype(np.float32)
    for value, color in colors.items():
        mask = label_slice == value
        rgb[mask] = (1 - OVERLAY_ALPHA) * rgb[mask] + OVERLAY_ALPHA * np.asarray(color) * 255
    image = Image.fromarray(rgb.astype(np.uint8), mode="RGB")
    scale = PANEL_SIZE / max(image.size)
    new_size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
    image = image.resize(new_size, Image.NEAREST)
    canvas = Image.new("RGB", (PANEL_SIZE, PANEL_SIZE))
    canvas.paste(image, ((PANEL_SIZE - new_size[0]) // 2, (PANEL_SIZE - new_size[1]) // 2))
    return canvas


def render_preview(
    volume: Volume,
    labels: LabelVolume,
    path: Union[str, Path],
    window: Optional[Sequence[float]] = None,
    title: str = "",
    warnings: Sequence[str] = (),
) -> Path:
    """Write a PNG with axial, coronal and sagittal slices through the segmented region of
    ``volume`` (C, z, y, x; channel 0 shown) and ``labels`` (z, y, x), with ``warnings`` (the
    run's, each once) in a banner above them and in the ``unetpp_warnings`` text chunk."""
    image, label_array = _isotropic(volume, labels)
    z, y, x = _focus(label_array)
    colors = {label.value: tuple(label.color) for label in labels.labels}
    gray = _window(image, window)
    # LPS arrays: rows of an axial slice run anterior->posterior, columns right->left.
    panels = [
        ("axial", _panel(gray[z], label_array[z], colors)),
        ("coronal", _panel(gray[:, y, :][::-1], label_array[:, y, :][::-1], colors)),
        ("sagittal", _panel(gray[:, :, x][::-1], label_array[:, :, x][::-1], colors)),
    ]
    warnings = list(dict.fromkeys(w for w in warnings if w))
    width = PANEL_SIZE * 3
    banner = _warning_lines(ImageDraw.Draw(Image.new("RGB", (1, 1))), warnings, width)
    top = LINE_HEIGHT * len(banner) + 8 if banner else 0
    legend_height = 22 + 16 * max(1, len(labels.labels))
    sheet = Image.new("RGB", (width, top + PANEL_SIZE + legend_height), "black")
    draw = ImageDraw.Draw(sheet)
    font = draw.getfont()
    if banner:
        draw.rectangle([0, 0, width - 1, top - 1], fill=WARNING_FILL)
        for index, line in enumerate(banner):
            draw.text((6, 4 + LINE_HEIGHT * index), line, fill="black")
    for index, (name, panel) in enumerate(panels):
        sheet.paste(panel, (index * PANEL_SIZE, top))
        draw.text((index * PANEL_SIZE + 6, top + 4), name, fill="white")
    draw.text((6, top + PANEL_SIZE + 4), _drawable(title, font), fill="white")
    for index, label in enumerate(labels.labels):
        row = top + PANEL_SIZE + 20 + 16 * index
        voxels = int((labels.array == label.value).sum())
        millilitres = voxels * float(np.prod(labels.spacing)) / 1000.0
        rgb = tuple(int(c * 255) for c in label.color)
        draw.rectangle([6, row + 2, 18, row + 12], fill=rgb)
        text = _drawable(f"{label.name}: {millilitres:.1f} ml", font)
        draw.text((24, row), text, fill="white")
    info = PngInfo()
    if warnings:
        info.add_itxt(WARNINGS_KEY, "\n".join(" ".join(w.split()) for w in warnings))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, pnginfo=info)
    return path
