"""mail that follows: status tokens kept for later links, review alerts and their spells

A lead keeps its status token, encrypted, so that a quote's e-mail can carry the patient's
link (leads accepted before this have none: their quote mail points to the first e-mail).
Review alerts are rows owed to a person until one mail names them; a person's spell tells
when their gathered alerts are due as one digest (leads/messaging/review_alerts.py).

Revision ID: 0005_mail
Revises: 0004
Create Date: 2026-12-03 08:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005_mail'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status_token', sa.Text(), nullable=True))

    op.create_table(
        'review_alerts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('lead_id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['event_id'], ['timeline_events.id']),
        sa.ForeignKeyConstraint(['lead_id'], ['leads.id']),
        sa.ForeignKeyConstraint(['message_id'], ['email_messages.id']),
        sa.ForeignKeyConstraint(['user_id'], ['users.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('event_id', 'user_id', name='uq_review_alerts_event_user'),
    )
    with op.batch_alter_table('review_alerts', schema=None) as batch_op:
        batch_op.create_index('ix_review_alerts_user_message', ['user_id', 'message_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_review_alerts_lead_id'), ['lead_id'], unique=False)

    op.create_table(
        'review_alert_spells',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('gathering_until', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id']),
        sa.PrimaryKeyConstraint('user_id'),
    )


def downgrade():
    op.drop_table('review_alert_spells')
    with op.batch_alter_table('review_alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_review_alerts_lead_id'))
        batch_op.drop_index('ix_review_alerts_user_message')
    op.drop_table('review_alerts')
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_column('status_token')
