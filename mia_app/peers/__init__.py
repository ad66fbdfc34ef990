"""Peer attacks run on the same target T and judged by the same E as ours (see ``mia_app.ablation``)."""
