"""The layout step: regions, baselines, line polygons and reading order, from kraken or from ground truth."""
from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import Optional, Protocol

from PIL import Image

from .errors import EngineError, InputError, ModelError
from .geometry import clip_points
from .kraken_support import kraken_device, kraken_version
from .model import Line, Page, Region, new_id

log = logging.getLogger(__name__)


class LayoutStep(Protocol):
    """A layout back-end: fills ``page.regions`` and ``page.lines`` (in reading order)."""

    name: str

    def describe(self) -> dict: ...

    def segment(self, page: Page, image: Image.Image) -> None: ...


class GroundTruthLayout:
    """Keeps the regions and lines read from the page's paired PAGE/ALTO file."""

    name = "ground-truth"

    def describe(self) -> dict:
        return {"engine": "ground-truth", "version": None, "settings": {}}

    def segment(self, page: Page, image: Image.Image) -> None:
        if page.ground_truth is None:
            raise InputError(
                f"page {page.name} has no ground-truth XML beside its image; "
                "the ground-truth layout needs a same-named .xml (ALTO or PAGE) for every page",
                page=page.name,
            )


def default_segmentation_model() -> Path:
    """The baseline + region model that ships inside kraken's wheel (Apache-2.0)."""
    return Path(str(resources.files("kraken").joinpath("blla.mlmodel")))


class KrakenLayout:
    """kraken 7 baseline segmentation through ``kraken.tasks.SegmentationTaskModel`` (loaded once)."""

    name = "kraken"

    def __init__(self, model: Optional[str | Path] = None, device: str = "cpu") -> None:
        from kraken.configs import SegmentationInferenceConfig
        from kraken.tasks import SegmentationTaskModel

        self.model_path = Path(model) if model else default_segmentation_model()
        if not self.model_path.is_file():
            raise ModelError(f"segmentation model {self.model_path} does not exist")
        try:
            self._task = SegmentationTaskModel.load_model(self.model_path)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"cannot load segmentation model {self.model_path}: {exc}") from exc
        self._config = SegmentationInferenceConfig(**kraken_device(device))

    def describe(self) -> dict:
        return {"engine": "kraken", "version": kraken_version(),
                "settings": {"model": self.model_path.name}}

    def segment(self, page: Page, image: Image.Image) -> None:
        try:
            seg = self._task.predict(image, self._config)
        except Exception as exc:  # kraken raises many kinds; name the page
            raise EngineError(f"kraken segmentation failed on page {page.name}: {exc}", page=page.name) from exc
        page.replace_layout(*from_kraken_segmentation(seg, image.width, image.height))


def from_kraken_segmentation(seg, width: int, height: int) -> tuple[list[Region], list[Line]]:
    """Regions and lines of a kraken ``Segmentation``, lines in its reading order."""
    regions: list[Region] = []
    for rtype, regs in (seg.regions or {}).items():
        for reg in regs:
            if len(reg.boundary) < 3:
                continue
            regions.append(Region(id=_xml_id(reg.id, "region"), type=rtype,
                                  polygon=clip_points(reg.boundary, width, height)))
    known = {r.id for r in regions}
    order = seg.line_orders[0] if seg.line_orders else range(len(seg.lines or []))
    lines: list[Line] = []
    for idx in order:
        kl = seg.lines[idx]
        if not kl.baseline or not kl.boundary or len(kl.boundary) < 3 or len(kl.baseline) < 2:
            log.warning("skipping a kraken line without baseline or boundary")
            continue
        region_id = next((_xml_id(r, "region") for r in (kl.regions or []) if _xml_id(r, "region") in known), None)
        line_type = ((kl.tags or {}).get("type") or [{}])[0].get("type")
        lines.append(Line(id=_xml_id(kl.id, "line"),
                          baseline=clip_points(kl.baseline, width, height),
                          polygon=clip_points(kl.boundary, width, height),
                          region_id=region_id,
                          tags={"type": line_type} if line_type and line_type != "default" else {}))
    # Regions follow the reading order of their first line; empty regions go last.
    first = {}
    for i, line in enumerate(lines):
        first.setdefault(line.region_id, i)
    regions.sort(key=lambda r: first.get(r.id, len(lines)))
    return regions, lines


def _xml_id(raw: Optional[str], prefix: str) -> str:
    """kraken ids are UUIDs that may start with '_' or a digit; make them valid XML IDs."""
    if not raw:
        return new_id(prefix)
    raw = raw.lstrip("_")
    return raw if raw[:1].isalpha() else f"{prefix}_{raw}"


def make_layout(name: str, model: Optional[str | Path] = None, device: str = "cpu") -> LayoutStep:
    """The layout step chosen by configuration."""
    if name == "kraken":
        return KrakenLayout(model, device=device)
    if name in ("ground-truth", "pagexml", "gt"):
        return GroundTruthLayout()
    raise InputError(f"unknown layout {name!r}; choose 'kraken' or 'ground-truth'")
