"""`keys rotate`: every encrypted value re-encrypted under the newest of `DATA_KEYS`.

The columns are found by their type (every `Encrypted` column in the metadata), so a new
personal column is rotated with no list to keep up to date. Rows are taken in batches by
primary key and each batch is committed on its own. A value already under the newest key is
never selected, so a run that was stopped goes on, when started again, where it was. Each
value is written back by a compare-and-set UPDATE (`WHERE id = :id AND col = :old`): a value
the running service changed meanwhile is left as that process wrote it, and counted.
"""

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Column, MetaData, Table, and_, func, literal, or_, select, type_coerce
from sqlalchemy.orm import Session

from leads.privacy.personal import HEADER_LENGTH, Encrypted, Keyring, PersonalBytes

# Attachments are up to 10 MB each: never hold more than a few of them at once.
BYTES_BATCH = 4


@dataclass
class ColumnRotation:
    column: str  # "table.column"
    rotated: int = 0
    changed_meanwhile: int = 0


def encrypted_columns(metadata: MetaData) -> Iterator[tuple[Table, list[Column]]]:
    for table in metadata.sorted_tables:
        columns = [c for c in table.columns if isinstance(c.type, Encrypted)]
        if columns:
            yield table, columns


def _stored(column: Column):
    """The column as stored: the ciphertext, not run through the personal type."""
    return type_coerce(column, column.type.impl)


def _not_current(column: Column, keys: Keyring):
    stored = _stored(column)
    return and_(stored.is_not(None), func.substr(stored, 1, HEADER_LENGTH)
                != literal(column.type.current_prefix(keys), column.type.impl))


def _is_current(value, column: Column, keys: Keyring) -> bool:
    return value is None or value[:HEADER_LENGTH] == column.type.current_prefix(keys)


def replace_value(session: Session, table: Table, column: Column, key, old, new) -> bool:
    """Write `new` where the row still holds `old`; False when it changed meanwhile."""
    [pk] = table.primary_key.columns
    # Re-encrypting changes nothing: columns such as `updated_at` keep their value.
    unchanged = {c.name: c for c in table.columns if c.onupdate is not None}
    result = session.execute(
        table.update().where(pk == key, _stored(column) == literal(old, column.type.impl))
        .values({**unchanged, column.name: literal(new, column.type.impl)}))
    return result.rowcount == 1


def rotate_table(session: Session, table: Table, columns: list[Column], keys: Keyring,
                 batch_size: int) -> list[ColumnRotation]:
    [pk] = table.primary_key.columns
    results = {column.name: ColumnRotation(f"{table.name}.{column.name}") for column in columns}
    if any(isinstance(column.type, PersonalBytes) for column in columns):
        batch_size = min(batch_size, BYTES_BATCH)
    stale = or_(*(_not_current(column, keys) for column in columns))
    after = None
    while True:
        query = select(pk, *(_stored(c) for c in columns)).where(stale)
        if after is not None:
            query = query.where(pk > after)
        rows = session.execute(query.order_by(pk).limit(batch_size)).all()
        for key, *values in rows:
            for column, value in zip(columns, values, strict=True):
                if _is_current(value, column, keys):
                    continue
                result = results[column.name]
                if replace_value(session, table, column, key, value,
                                 column.type.rewrap(value, keys)):
                    result.rotated += 1
                else:
                    result.changed_meanwhile += 1
        session.commit()
        if len(rows) < batch_size:
            return list(results.values())
        after = rows[-1][0]


def values_not_current(session: Session, metadata: MetaData, keys: Keyring) -> int:
    """How many encrypted values are under another key than the newest."""
    return sum(session.scalar(select(func.count()).select_from(table)
                              .where(_not_current(column, keys)))
               for table, columns in encrypted_columns(metadata) for column in columns)


def rotate(session: Session, metadata: MetaData, keys: Keyring,
           batch_size: int) -> Iterator[ColumnRotation]:
    """Re-encrypt every table's values under the newest key, table by table."""
    for table, columns in encrypted_columns(metadata):
        yield from rotate_table(session, table, columns, keys, batch_size)
