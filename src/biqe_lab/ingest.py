"""Turning user input (a ZIP, a folder, image files) into a Document, with paired ground truth read in."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

from PIL import Image, UnidentifiedImageError

from .errors import GroundTruthError, ImageDecodeError, InputError, NoImagesError
from .formats import read_layout
from .geometry import clip_points, rectangle, scale_points
from .model import Document, GroundTruth, ImageRef, Line, Page, Region
from .safezip import IMAGE_SUFFIXES, ZipLimits, extract_zip

Source = Union[str, Path, Sequence[Union[str, Path]]]


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(path))]


def _is_hidden(path: Path, root: Path) -> bool:
    rel = path.relative_to(root).parts
    return any(p.startswith(".") or p == "__MACOSX" for p in rel)


def find_images(folder: Path) -> list[Path]:
    """Page images below ``folder`` in natural order (page2 before page10), hidden files skipped."""
    found = [
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not _is_hidden(p, folder)
    ]
    return sorted(found, key=_natural_key)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def open_image(ref: ImageRef) -> Image.Image:
    """The decoded page image of ``ref`` (the right frame of a multi-page TIFF)."""
    try:
        im = Image.open(ref.path)
        if ref.frame:
            im.seek(ref.frame)
        im.load()
        return im
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, EOFError) as exc:
        raise ImageDecodeError(f"cannot decode image {Path(ref.path).name}: {exc}", file=ref.path) from exc


def probe_image(path: Path) -> list[ImageRef]:
    """One ImageRef per frame of ``path``; decodes every frame once so broken files fail here."""
    refs = []
    try:
        with Image.open(path) as im:
            frames = getattr(im, "n_frames", 1)
            digest = _sha256(path)
            for frame in range(frames):
                im.seek(frame)
                im.load()
                dpi = im.info.get("dpi")
                dpi = (float(dpi[0]), float(dpi[1])) if dpi and dpi[0] and dpi[1] else None
                refs.append(ImageRef(path=str(path), width=im.width, height=im.height,
                                     sha256=digest, dpi=dpi, frame=frame))
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, EOFError, SyntaxError) as exc:
        raise ImageDecodeError(f"cannot decode image {path.name}: {exc}", file=path) from exc
    return refs


def ground_truth_for(image: Path) -> Optional[Path]:
    """The same-named ``.xml`` beside an image (``page.jpg`` -> ``page.xml``), if there is one."""
    for candidate in (image.with_suffix(".xml"), image.with_suffix(".XML")):
        if candidate.is_file():
            return candidate
    return None


def read_ground_truth(xml: Path, image: ImageRef) -> tuple[list[Region], list[Line]]:
    """Regions and lines of a PAGE/ALTO file, fitted to the image: the text becomes each line's reference.

    Coordinates are scaled when the file's page size differs from the image (a file made on a
    resized copy, or ALTO in mm10/inch1200 units) and clipped into the image.
    """
    parsed = read_layout(xml)
    sx = image.width / parsed.width if parsed.width else 1.0
    sy = image.height / parsed.height if parsed.height else 1.0
    if not (0.05 < sx < 20 and 0.05 < sy < 20):
        raise GroundTruthError(
            f"{xml.name} describes a {parsed.width}x{parsed.height} page but the image is "
            f"{image.width}x{image.height}", file=xml)

    def fit(points):
        pts = scale_points(points, sx, sy) if (sx, sy) != (1.0, 1.0) else points
        return clip_points(pts, image.width, image.height)

    regions = [r.model_copy(update={"polygon": fit(r.polygon)}) for r in parsed.regions]
    lines = []
    for line in parsed.lines:
        imported = line.variant("import")
        lines.append(Line(id=line.id, baseline=fit(line.baseline), polygon=fit(line.polygon),
                          region_id=line.region_id, tags=line.tags,
                          reference=imported.text if imported else None))
    return regions, lines


def line_image_ground_truth(image: Path, ref: ImageRef) -> Optional[tuple[list[Region], list[Line]]]:
    """A line image with a same-named ``.gt.txt`` (kraken's line format): one line spanning the image."""
    gt = image.with_name(image.stem + ".gt.txt")
    if not gt.is_file():
        return None
    w, h = ref.width, ref.height
    region = Region(id=f"r_{image.stem}"[:60], polygon=rectangle(0, 0, w - 1, h - 1))
    line = Line(id=f"l_{image.stem}"[:60], region_id=region.id, polygon=rectangle(0, 0, w - 1, h - 1),
                baseline=[(0, round(h * 0.75)), (w - 1, round(h * 0.75))],
                reference=gt.read_text(encoding="utf-8").strip("\n\r"))
    return [region], [line]


def _page_name(path: Path, ref: ImageRef, frames: int) -> str:
    return f"{path.stem}_p{ref.frame + 1:04d}" if frames > 1 else path.stem


def pages_from_images(images: Iterable[Path], with_ground_truth: bool = True) -> list[Page]:
    pages: list[Page] = []
    for path in images:
        refs = probe_image(path)
        xml = ground_truth_for(path) if with_ground_truth and len(refs) == 1 else None
        for ref in refs:
            page = Page(name=_page_name(path, ref, len(refs)), image=ref)
            if xml is not None:
                regions, lines = read_ground_truth(xml, ref)
                page.ground_truth = GroundTruth(source=str(xml), regions=regions, lines=lines)
            elif with_ground_truth and (line_gt := line_image_ground_truth(path, ref)) is not None:
                page.ground_truth = GroundTruth(source=str(path.with_name(path.stem + ".gt.txt")),
                                                regions=line_gt[0], lines=line_gt[1])
            if page.ground_truth is not None:  # the layout starts as the ground truth's (a copy: steps change it)
                page.replace_layout(*ground_truth_layout(page.ground_truth))
            pages.append(page)
    return pages


def ground_truth_layout(truth: GroundTruth) -> tuple[list[Region], list[Line]]:
    """Fresh copies of the ground truth's regions and lines, to serve as a page's layout."""
    return [r.model_copy(deep=True) for r in truth.regions], [l.model_copy(deep=True) for l in truth.lines or []]


def ingest(source: Source, workdir: Optional[Union[str, Path]] = None,
           limits: Optional[ZipLimits] = None, with_ground_truth: bool = True,
           name: Optional[str] = None) -> Document:
    """Build a Document from a ZIP, a folder or a list of image files.

    A ZIP is extracted (safely, see :mod:`biqe_lab.safezip`) into ``workdir``, which then
    holds the page images the document refers to.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise InputError(f"input {path} does not exist", file=path)
        if path.is_dir():
            images = find_images(path)
            if not images:
                raise NoImagesError(f"folder {path} holds no page image (JPEG, PNG or TIFF)")
        elif path.suffix.lower() == ".zip":
            if workdir is None:
                raise InputError("a ZIP input needs a work folder to extract its pages into")
            dest = Path(workdir)
            dest.mkdir(parents=True, exist_ok=True)
            written = extract_zip(path, dest, limits)  # only this archive's files, not older ones in dest
            images = sorted((p for p in written if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            images = [path]
        else:
            raise InputError(f"{path.name} is neither a folder, a ZIP nor a JPEG/PNG/TIFF image", file=path)
        doc_name = name or path.stem
    else:
        images = [Path(p) for p in source]
        if not images:
            raise NoImagesError("no image files were given")
        for p in images:
            if not p.is_file():
                raise InputError(f"image {p} does not exist", file=p)
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                raise InputError(f"{p.name} is not a JPEG, PNG or TIFF image", file=p)
        doc_name = name or "document"
    return Document(name=doc_name, pages=pages_from_images(images, with_ground_truth))
