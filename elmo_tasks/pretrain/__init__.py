"""Pretraining a biLM on plain text (the bilm-tf recipe) and exporting it in the public format."""
