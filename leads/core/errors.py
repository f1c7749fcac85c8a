"""The one base of every refusal the domain names. Each error carries its HTTP status and
problem type, so the web layer answers all of them as problem details in one handler
(leads/web/problems.py) and no view catches them one by one."""


class DomainError(Exception):
    status = 400
    title = "Bad Request"
    type = "about:blank"
    validation_type = "/problems/validation-error"
    # Set on errors that name bad fields: {"field": ["message", ...]}.
    errors: dict[str, list[str]] | None = None

    def __init__(self, detail: str, **extra):
        super().__init__(detail)
        self.detail = detail
        # Members of the problem details beyond the standard ones (`current`, `allowed`, ...).
        self.extra = extra


class NotFound(DomainError):
    """No such record, or one that belongs to someone else."""

    status = 404
    title = "Not Found"


class Conflict(DomainError):
    """The resource is in a state, or the catalogue holds a record, that refuses the change."""

    status = 409
    title = "Conflict"


class Invalid(DomainError):
    """A field the request schema could not judge alone (it needs the database or another
    record): answered like any validation failure, naming the field."""

    status = 422
    title = "Unprocessable Entity"
    type = DomainError.validation_type

    def __init__(self, field: str, message: str):
        super().__init__("The request has invalid fields.")
        self.errors = {field: [message]}
