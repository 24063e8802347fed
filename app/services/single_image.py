"""--test IMAGE: detection on one file, no database."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from app.config import Settings
from app.inference.detector import Detector
from app.pipeline.analyze import FoundFace, analyze_image
from app.pipeline.decode import load_rgb
from app.services.detect import analyze_options


@dataclass(frozen=True)
class SingleImageResult:
    faces: list[FoundFace]
    annotated: Path
    size: tuple[int, int]


def default_output(image: Path) -> Path:
    return image.with_name(f"{image.stem}.faces.jpg")


def run_test(image_path: Path, detector: Detector, settings: Settings, output: Path | None) -> SingleImageResult:
    """Raises DecodeError for unusable files."""
    opts = analyze_options(settings)
    image = load_rgb(image_path, opts.max_pixels)
    faces = analyze_image(image, detector, opts)
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(max(canvas.size) / 400))
    for i, found in enumerate(faces):
        face, b = found.face, found.face.box
        colour = (0, 220, 0) if found.usable else (255, 160, 0)
        draw.rectangle([b.x, b.y, b.x + b.w, b.y + b.h], outline=colour, width=width)
        draw.text((b.x + 2, b.y + 2), f"{i} {face.score:.2f}", fill=colour)
        for x, y in face.landmarks:
            draw.ellipse([x - width, y - width, x + width, y + width], fill=(255, 0, 0))
    target = output or default_output(image_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(target, format="JPEG", quality=90)
    return SingleImageResult(faces, target, (image.shape[1], image.shape[0]))
