"""biqe_lab: handwritten text recognition workbench; this module is the public, importable API."""
from .errors import BiqeError
from .evaluation import evaluate
from .export import export_document, render_page
from .formats import read_layout
from .ingest import ingest, open_image
from .model import Document, ImageRef, Line, Page, ProcessingRecord, Producer, Region, TextVariant
from .pipeline import PipelineConfig, run_pipeline
from .progress import CancelToken, ConsoleProgress, NullProgress
from .safezip import ZipLimits, extract_zip
from .version import __version__

__all__ = [
    "BiqeError", "CancelToken", "ConsoleProgress", "Document", "ImageRef", "Line", "NullProgress", "Page",
    "PipelineConfig", "ProcessingRecord", "Producer", "Region", "TextVariant", "ZipLimits", "__version__",
    "evaluate", "export_document", "extract_zip", "ingest", "open_image", "read_layout", "render_page",
    "run_pipeline",
]
