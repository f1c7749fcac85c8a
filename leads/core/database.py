"""The database: one Flask-SQLAlchemy instance, the base every model shares, and how a
pooled connection is trusted."""

import functools
import time

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Executable, Float, Insert, MetaData, Row, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.functions import FunctionElement

# Named constraints keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)

# ON CONFLICT, which both dialects have, each with its own construct.
DIALECT_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def dialect_name() -> str:
    return db.session.get_bind().dialect.name


def execute_committed(statement: Executable, values: dict) -> Row | None:
    """Run one statement that is a whole change by itself, committed as it ends (autocommit):
    one round trip, where a transaction adds a BEGIN and a COMMIT to wait for. Its first row
    back, if any."""
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        return connection.execute(statement, values).one_or_none()


def autocommit_from_here() -> None:
    """On PostgreSQL the session's statements from here on (until it commits or ends) run in
    autocommit: no BEGIN before the first and no ROLLBACK after the last, each a round trip.
    At READ COMMITTED each statement reads its own snapshot inside a transaction as well, so
    reads see nothing different; writes lose only what a transaction adds, so only a caller
    that reads (leads/web/transactions.py) asks for it. SQLite keeps its transaction."""
    # A session already in a transaction (a caller's own app context around several
    # requests, as some tests have) keeps it.
    if db.engine.dialect.name == "postgresql" and not db.session().in_transaction():
        db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


class hours_between(FunctionElement):  # noqa: N801  (used as SQL functions are, lower case)
    """`hours_between(start, end)`: the hours from one timestamp to another, as a float,
    worked out by the database on either backend."""

    type = Float()
    inherit_cache = True


@compiles(hours_between)  # PostgreSQL's, and any other dialect's (a statement printed)
def _hours_between_by_epoch(element, compiler, **kw):
    start, end = (compiler.process(argument, **kw) for argument in element.clauses)
    return f"CAST(EXTRACT(EPOCH FROM ({end} - {start})) AS DOUBLE PRECISION) / 3600"


@compiles(hours_between, "sqlite")
def _hours_between_sqlite(element, compiler, **kw):
    start, end = (compiler.process(argument, **kw) for argument in element.clauses)
    return f"(julianday({end}) - julianday({start})) * 24"


def dialect_insert(target: Table | type[Base]) -> Insert:
    """An INSERT into a table (Core) or a model (ORM) that may carry ON CONFLICT."""
    return DIALECT_INSERTS[dialect_name()](target)


def insert_unless_taken(table: Table, unique_column: str) -> Insert:
    """`INSERT ... ON CONFLICT (unique_column) DO NOTHING RETURNING id`: executed with the
    row's values it answers the new row's id, or None when the value is taken, decided by
    the unique index in the same statement. Built once per table and dialect."""
    return _insert_unless_taken(table, unique_column, dialect_name())


@functools.cache
def _insert_unless_taken(table: Table, unique_column: str, dialect: str) -> Insert:
    return (DIALECT_INSERTS[dialect](table)
            .on_conflict_do_nothing(index_elements=[table.c[unique_column]])
            .returning(table.c.id))


# A connection used again within this many seconds is taken as it is: under load that is
# every checkout, so no request pays a ping. One left idle longer may have been dropped (a
# database restart, a firewall's idle timeout) and is pinged before use.
IDLE_BEFORE_PING = 10.0


def ping_connections_left_idle(engine: Engine) -> None:
    """Instead of `pool_pre_ping`, which pings on every checkout: a dead idle connection
    raises DisconnectionError here, and the pool replaces it and tries again (SQLAlchemy's
    "pessimistic" checkout handling); `pool_recycle` retires connections before a server's
    own idle timeout."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection, record):
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _taken(dbapi_connection, record, _proxy):
        returned = record.info.pop("returned_at", None)
        if returned is None or time.monotonic() - returned < IDLE_BEFORE_PING:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError("an idle connection was dropped") from error
        if not alive:
            raise DisconnectionError("an idle connection was dropped")
