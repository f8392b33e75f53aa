"""Write-ups from finished run folders: ``genlab report`` reads course and run folders
(metrics, checkpoints, TensorBoard events, pictures) and writes HTML, PDF and Markdown;
it trains nothing."""

from genlab.report.sections import Section, collect_sections
from genlab.report.write import write_report

__all__ = ["Section", "collect_sections", "write_report"]
