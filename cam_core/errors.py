"""The one exception type a person can cause and act on (bad file, wrong layer, unsupported method)."""
from __future__ import annotations


class CamError(ValueError):
    """An error the user caused; its message is one line a person can act on.

    Pages show it with ``st.error``; the CLI prints it on one line and exits non-zero.
    """


class ImageLoadError(CamError):
    """An image that cannot be used: empty, truncated, not an image, too large."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"{name}: {reason}")
