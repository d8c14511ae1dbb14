"""The one family of errors ``fer_core`` raises for things a user can fix: a missing model, an unusable
provider, a source that cannot be read, no face detector. Each carries a one-line message, the same the
command-line tools print, so ``except FerError`` is enough around any call of the API."""


class FerError(Exception):
    """Base class of the errors with a user-facing, one-line message."""
