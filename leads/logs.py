"""Logging set-up. Patient data never reaches a log: SQL parameters are hidden by the
engine options in config.py, and the result rows SQLAlchemy writes at DEBUG are dropped here."""

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class DropResultRows(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_ROW_FILTER = DropResultRows()


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format=FORMAT)
    engine_logger = logging.getLogger("sqlalchemy.engine.Engine")
    if _ROW_FILTER not in engine_logger.filters:
        engine_logger.addFilter(_ROW_FILTER)
