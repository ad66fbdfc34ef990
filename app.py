"""Entry point of the dashboard (`make demo`, the hosted image): serves http://127.0.0.1:7860.

Settings come from MIA_* environment variables (see mia_app/dashboard/settings.py); `python -m mia_app serve`
does the same.
"""

from mia_app.dashboard.server import serve

if __name__ == "__main__":
    serve()
