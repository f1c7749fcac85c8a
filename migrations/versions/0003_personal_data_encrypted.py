"""personal data encrypted at rest, keyed blind indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 09:00:00.000000

Encrypts every personal value that exists (under the newest of DATA_KEYS, read as the app
reads it: this runs inside `flask db upgrade`), replaces the unkeyed SHA-256 of the e-mail
with its keyed blind index, fills the name index `q=` searches, and keys the idempotency
fingerprints. JSON columns that hold personal data (timeline data, idempotency answers)
become text, since they hold ciphertext.
"""
import hashlib

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from leads.privacy.personal import (
    email_lookup_key,
    keyed_fingerprint,
    keyring,
    name_index_digests,
    normalise_email,
)

# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

BATCH = 500
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
# The personal columns as they stood at 0002, by table: (text columns, binary columns).
PERSONAL = {
    'leads': (['first_name', 'last_name', 'email', 'phone', 'condition'], []),
    'notes': (['body'], []),
    'timeline_events': (['data'], []),
    'referrals': (['decline_reason'], []),
    'quotes': (['notes'], []),
    'email_messages': (['recipient', 'body_text', 'body_html', 'last_error'], []),
    'idempotency_records': (['response'], []),
    'attachments': (['filename'], ['content']),
}
KEYS = {'idempotency_records': 'key'}  # primary keys other than `id`
# Digests of personal data, made keyed: the e-mail's lookup key, an attachment's content's.
DIGESTS = {'leads': ['email_key'], 'attachments': ['sha256']}
# Columns whose type changes: (table, column, type at 0002, PostgreSQL's cast to text).
RETYPED = [
    ('timeline_events', 'data', JSON_TYPE, 'data::text'),
    ('idempotency_records', 'response', JSON_TYPE, 'response::text'),
    ('email_messages', 'recipient', sa.String(length=254), None),
]


def _table(name, extra=()):
    text, binary = PERSONAL[name]
    return sa.table(name, sa.column(KEYS.get(name, 'id')),
                    *(sa.column(c, sa.Text()) for c in text),
                    *(sa.column(c, sa.LargeBinary()) for c in binary),
                    *(sa.column(c, sa.Text()) for c in extra))


def _rows(connection, table):
    """Every row, in batches by primary key (values are replaced as we go)."""
    key = table.c[KEYS.get(table.name, 'id')]
    after = None
    while True:
        query = sa.select(table).order_by(key).limit(BATCH)
        if after is not None:
            query = query.where(key > after)
        rows = connection.execute(query).mappings().all()
        yield from rows
        if len(rows) < BATCH:
            return
        after = rows[-1][key.name]


def _convert(connection, name, text_fn, bytes_fn, extra=(), more=None):
    """Rewrite each row's personal values with `text_fn`/`bytes_fn`; `more(row)` adds
    values for other columns of the row."""
    text, binary = PERSONAL[name]
    table = _table(name, extra)
    key = table.c[KEYS.get(name, 'id')]
    for row in _rows(connection, table):
        values = {c: text_fn(row[c]) for c in text if row[c] is not None}
        values.update({c: bytes_fn(bytes(row[c])) for c in binary if row[c] is not None})
        if more is not None:
            values.update(more(row))
        if values:
            connection.execute(table.update().where(key == row[key.name]).values(values))


def upgrade():
    connection = op.get_bind()
    keys = keyring()
    op.create_table('lead_search_terms',
    sa.Column('digest', sa.String(length=32), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], ),
    sa.PrimaryKeyConstraint('digest', 'lead_id')
    )
    with op.batch_alter_table('lead_search_terms', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lead_search_terms_lead_id'), ['lead_id'], unique=False)
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.alter_column('email_key', existing_type=sa.String(length=64), nullable=True)
    for table, column, before, cast in RETYPED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(column, existing_type=before, type_=sa.Text(),
                                  existing_nullable=False, postgresql_using=cast)

    terms = sa.table('lead_search_terms', sa.column('digest'), sa.column('lead_id'))

    def lead_indexes(row):
        digests = name_index_digests(row['first_name'], row['last_name'])
        if digests:
            connection.execute(terms.insert(), [{'digest': d, 'lead_id': row['id']}
                                                for d in digests])
        return {'email_key': email_lookup_key(row['email'])}

    def attachment_digest(row):
        return {'sha256': keyed_fingerprint('attachment', bytes(row['content']))}

    for name in PERSONAL:
        _convert(connection, name, keys.seal_text, keys.seal, extra=DIGESTS.get(name, ()),
                 more={'leads': lead_indexes, 'attachments': attachment_digest}.get(name))
    # The fingerprint is an HMAC of the body's SHA-256: the stored hashes can be keyed as is.
    fingerprints = sa.table('idempotency_records', sa.column('key'), sa.column('request_hash'))
    for row in _rows(connection, fingerprints):
        connection.execute(fingerprints.update().where(fingerprints.c.key == row['key']).values(
            request_hash=keyed_fingerprint('idempotency', bytes.fromhex(row['request_hash']))))


def downgrade():
    connection = op.get_bind()
    keys = keyring()

    def plain_email_key(row):
        email = keys.open_text(row['email']) if row['email'] is not None else ''
        return {'email_key': hashlib.sha256(normalise_email(email).encode()).hexdigest()}

    def plain_attachment_digest(row):
        return {'sha256': hashlib.sha256(keys.open(bytes(row['content']))).hexdigest()}

    for name in PERSONAL:
        _convert(connection, name, keys.open_text, keys.open, extra=DIGESTS.get(name, ()),
                 more={'leads': plain_email_key, 'attachments': plain_attachment_digest}.get(name))
    # An HMAC cannot be undone: the answers kept for retries go (they last a day anyway).
    connection.execute(sa.text('DELETE FROM idempotency_records'))
    for table, column, before, _cast in RETYPED:
        cast = f'{column}::jsonb' if isinstance(before, sa.JSON) else None
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(column, existing_type=sa.Text(), type_=before,
                                  existing_nullable=False, postgresql_using=cast)
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.alter_column('email_key', existing_type=sa.String(length=64), nullable=False)
    with op.batch_alter_table('lead_search_terms', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lead_search_terms_lead_id'))
    op.drop_table('lead_search_terms')
