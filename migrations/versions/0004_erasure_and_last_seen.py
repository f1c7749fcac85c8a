"""erasure and last seen

A lead's personal fields, its e-mail lookup key and its status token may be erased
(leads/people.py); `erased_at` tells when. A staff user's `last_seen_at` is kept to the minute.

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-27 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

ERASABLE = ('first_name', 'last_name', 'email', 'condition')


def upgrade():
    with op.batch_alter_table('leads', schema=None) as batch_op:
        for column in ERASABLE:
            batch_op.alter_column(column, existing_type=sa.Text(), nullable=True)
        batch_op.alter_column('email_key', existing_type=sa.String(length=64), nullable=True)
        batch_op.alter_column('status_token_hash', existing_type=sa.String(length=64),
                              nullable=True)
        batch_op.add_column(sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    # Erased leads cannot be given their data back: the downgrade fails while any exist.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('last_seen_at')

    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_column('erased_at')
        batch_op.alter_column('status_token_hash', existing_type=sa.String(length=64),
                              nullable=False)
        batch_op.alter_column('email_key', existing_type=sa.String(length=64), nullable=False)
        for column in ERASABLE:
            batch_op.alter_column(column, existing_type=sa.Text(), nullable=False)
