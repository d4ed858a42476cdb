"""Domain errors: each names the failure and carries a message a user can act on."""


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "domain_error"
    http_status = 400

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details


class ValidationFailed(DomainError):
    """Input is malformed or refers to something unknown."""

    code = "invalid_input"
    http_status = 400


class NotFound(DomainError):
    code = "not_found"
    http_status = 404


class PermissionDenied(DomainError):
    code = "forbidden"
    http_status = 403


class TransitionNotAllowed(DomainError):
    """The event is not allowed in the case's current state."""

    code = "transition_not_allowed"
    http_status = 409


class GuardFailed(DomainError):
    """The event is allowed from this state but one of its guards does not hold."""

    code = "guard_failed"
    http_status = 409


class ConflictError(DomainError):
    """Someone else changed the case first (optimistic locking)."""

    code = "conflict"
    http_status = 409


class OutOfScope(DomainError):
    """The loan is outside the scope of the inclusive-credit exemption rules."""

    code = "out_of_scope"
    http_status = 422


class DocumentsUnavailable(DomainError):
    """Documents cannot be rendered on this server (e.g. the CJK font is missing): nothing was issued."""

    code = "letter_font_missing"
    http_status = 503
