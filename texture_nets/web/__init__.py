"""texture_nets in the browser: `texture-nets serve` (or `python -m texture_nets.web`) serves a page
to stylize photos with the installed styles and to train new ones, and the JSON API behind it.

FastAPI and uvicorn are an optional extra (`pip install -e ".[web]"`): importing this package does
not need them; `create_app` and `WebConfig` load them on first use."""

__all__ = ["WebConfig", "create_app", "serve_main"]


def serve_main(argv: list[str] | None = None) -> int:
    """Entry point of `texture-nets serve`; returns the exit status."""
    from texture_nets.web.serve import main  # FastAPI is an optional extra: imported on first use
    return main(argv)


def __getattr__(name: str):
    if name in ("WebConfig", "create_app"):
        from texture_nets.web import app  # FastAPI is an optional extra: imported on first use
        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
