"""The one exception type for mistakes a user can make (bad path, bad image, wrong checkpoint, absurd option)."""


class TextureNetsError(Exception):
    """A problem the user can fix; the message says what went wrong, with the path, and what to do.

    The command lines print it as one line and exit non-zero; library callers can catch it.
    """
