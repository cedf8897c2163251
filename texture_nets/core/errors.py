"""The one exception type for mistakes a user can make (bad path, bad image, wrong checkpoint, absurd option)."""

WORKER_PREFIX = "Caught TextureNetsError in DataLoader worker"  # how PyTorch re-raises a worker's error


class TextureNetsError(Exception):
    """A problem the user can fix; the message says what went wrong, with the path, and what to do.

    The command lines print it as one line and exit non-zero; library callers can catch it.
    Raised in a DataLoader worker, PyTorch re-raises it in the main process with the worker's whole
    traceback as its message: that is cut back to the original one-line message here.
    """

    def __init__(self, message: object = "", *args):
        super().__init__(_from_worker(message) if isinstance(message, str) else message, *args)


def _from_worker(message: str) -> str:
    """The original message inside a DataLoader worker's re-raise text, or `message` as it is."""
    if not message.startswith(WORKER_PREFIX):
        return message
    marker = f"{TextureNetsError.__name__}: "
    return message[message.rindex(marker) + len(marker):].strip() if marker in message else message
