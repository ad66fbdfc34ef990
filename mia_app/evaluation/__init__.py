"""Evaluation: metrics judged by E (and independent models), never by the target or a loss."""
