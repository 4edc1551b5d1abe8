"""XenAPI failures as values: :class:`XapiError` carries xapi's ErrorDescription, with
the human message of a numa plugin's own failure (:func:`xapi_numa.errors.failure_message`)
rather than its raw parameters."""
from xapi_numa.errors import NumaError, failure_message


class XapiError(NumaError):
    """A XenAPI call failed; ``code`` and ``params`` are xapi's ErrorDescription."""

    code = "XENAPI_ERROR"

    def __init__(self, details) -> None:
        details = [str(d) for d in details] or ["INTERNAL_ERROR"]
        super().__init__(failure_message(details) or "xapi refused: {}".format(" ".join(details)), details[1:])
        self.code = details[0]
