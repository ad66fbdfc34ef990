"""mia_app: diffusion-prior model inversion attacks on face classifiers, with a Gradio dashboard."""

__version__ = "0.1.0"
