"""The research workbench: what the notebooks call (runs, tables, plots, overlays, review, widgets, reports)."""
from .display import show_figure, show_html, show_image, show_table, show_worst_lines, worst_lines_html
from .overlay import Layers, crop_line, render_overlay
from .plots import cer_per_page, cer_vs_confidence, confusion_bars
from .report import notebook_html, run_metrics, write_run_outputs
from .review import ReviewItem, decide, diff_html, review_items, variant_table
from .runs import (Run, dataset_name, load_run, make_config, output_folder, process_dataset, process_grid,
                   resolve_dataset, sample_images)
from .tables import char_ops, confusion_table, dataset_table, line_table, page_table, tier_table, worst_lines
from .widgets import PageViewer, ReviewPanel

__all__ = [
    "Layers", "PageViewer", "ReviewItem", "ReviewPanel", "Run", "cer_per_page", "cer_vs_confidence", "char_ops",
    "confusion_bars", "confusion_table", "crop_line", "dataset_name", "dataset_table", "decide", "diff_html",
    "line_table", "load_run", "make_config", "notebook_html", "output_folder", "page_table", "process_dataset", "process_grid",
    "render_overlay", "resolve_dataset", "review_items", "run_metrics", "sample_images", "show_figure",
    "show_html", "show_image", "show_table", "show_worst_lines", "tier_table", "variant_table", "worst_lines", "worst_lines_html",
    "write_run_outputs",
]
