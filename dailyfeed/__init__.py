"""dailyfeed: a social feed backend whose member activities survive the failure of whatever carries them.

`create_app` (app.py) builds the Flask app around the container that `dailyfeed.bootstrap.bootstrap` wires from
settings; reach the container with `dailyfeed.extension.get_container()`. Nothing is built at import time.
"""

from .app import create_app

__all__ = ["create_app"]
