"""Reports recomputed from a run record alone: scorecard JSON and Markdown."""
