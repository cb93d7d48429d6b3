"""`lsd serve`: restyle a browser's camera live over WebRTC (aiohttp + aiortc).

    from lsd.serve import make_app, serve
    serve("checkpoints/lsd-tiny", port=8000)            # what `lsd serve` runs
    app = make_app(checkpoint, max_sessions=2)           # the aiohttp app, e.g. for tests

app.py: routes, token check, session table; session.py: one peer's Stream and its
latest-wins worker; protocol.py: checks on what clients send; ice.py: loopback ICE
candidates; static/: the page (plain HTML + JS, no build step).
"""

from .app import make_app, serve

__all__ = ["make_app", "serve"]
