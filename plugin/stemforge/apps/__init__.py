"""What users run: batch export, renders, sections, live, evaluation (the CLI is their face)."""
