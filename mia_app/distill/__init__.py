"""Distillation of the 32-px identity encoder ``sface32`` from SFace, on public-generator faces only."""
