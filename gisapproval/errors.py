"""One family of errors. Every error a user can cause says what is wrong and where."""


class GisApprovalError(Exception):
    """Base of every error the platform raises on purpose.

    ``where`` names the place (file, feature, field, setting) when there is one; the
    message says what is wrong and, where it can, how to fix it.
    """

    def __init__(self, message: str, *, where: str | None = None):
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class ConfigurationError(GisApprovalError):
    """A setting, a catalogue file or the environment is wrong."""


class DatabaseUnavailableError(GisApprovalError):
    """The database cannot be reached or lacks something it needs (PostGIS)."""


class ClusterError(GisApprovalError):
    """The app-owned PostgreSQL cluster cannot be set up, started or stopped."""


class NotFoundError(GisApprovalError):
    """A thing asked for does not exist (or the actor may not know that it does)."""


class PermissionDeniedError(GisApprovalError):
    """The actor's role or department does not allow this action."""


class AuthenticationError(GisApprovalError):
    """Wrong user name or password."""


class InputError(GisApprovalError):
    """Bad input: a file, a feature, a field or a value is wrong."""


class ConflictError(GisApprovalError):
    """Someone else changed the same thing first (a concurrent decision, a stale form)."""
