"""The research workbench: what the notebooks call (runs, tables, plots, overlays, review, widgets, reports)."""
from .display import (review_html, show_figure, show_html, show_image, show_notes, show_provenance, show_review, show_table,
                      show_worst_lines, worst_lines_html)
from .overlay import Layers, crop_line, render_overlay
from .plots import cer_per_page, cer_vs_confidence, confusion_bars, paired_cer, raw_vs_corrected
from .retrain import fine_tune, held_out_images, write_training_lines
from .report import notebook_html, provenance, provenance_html, run_metrics, write_run_outputs
from .review import ReviewItem, confidence_html, decide, diff_html, review_frame, review_items, variant_table
from .search import Hit, search
from .runs import (Run, dataset_name, load_run, make_config, output_folder, process_dataset, process_grid,
                   resolve_dataset, sample_images)
from .tables import char_ops, confusion_table, dataset_table, line_table, page_table, tier_table, worst_lines
from .widgets import PageViewer, ReviewPanel

__all__ = [
    "Hit", "confidence_html", "provenance", "provenance_html", "raw_vs_corrected", "review_frame", "search",
    "show_notes", "show_provenance", "review_html", "show_review", "paired_cer", "fine_tune", "held_out_images",
    "write_training_lines",
    "Layers", "PageViewer", "ReviewItem", "ReviewPanel", "Run", "cer_per_page", "cer_vs_confidence", "char_ops",
    "confusion_bars", "confusion_table", "crop_line", "dataset_name", "dataset_table", "decide", "diff_html",
    "line_table", "load_run", "make_config", "notebook_html", "output_folder", "page_table", "process_dataset", "process_grid",
    "render_overlay", "resolve_dataset", "review_items", "run_metrics", "sample_images", "show_figure",
    "show_html", "show_image", "show_table", "show_worst_lines", "tier_table", "variant_table", "worst_lines", "worst_lines_html",
    "write_run_outputs",
]
