"""The web room: REST, kernel WebSockets, authentication."""

from .site import make_site

__all__ = ["make_site"]
