"""TFLite export of trained models (KWS, streaming ASR) and the torch-free TFLite tools."""


class ExportError(RuntimeError):
    """A parity or target check failed; nothing was written. ``report`` holds what was measured."""

    def __init__(self, message: str, report: dict | None = None) -> None:
        super().__init__(message)
        self.report = report
