"""lead list indexes

The lead lists are newest first by (created_at, id): the time, and the list's filters
status, country and assignee, get an index on it, then the time and the id, so that a page
is read from one index, a created range included; a status and a treatment together have
one of their own, the queue a coordinator most often narrows further. They replace the
single-column indexes, which their first column serves as well. The treatment keeps its
own: with the time after it, intake's look-up of a repeat (e-mail, treatment, since) could
be planned on it instead of the e-mail's index while a growing table's statistics lag.

Revision ID: 0007_lead_list_indexes
Revises: 0006_webhooks
Create Date: 2026-12-07 16:30:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0007_lead_list_indexes'
down_revision = '0006_webhooks'
branch_labels = None
depends_on = None

REPLACED = {
    'ix_leads_created_at': ['created_at'],
    'ix_leads_status_created': ['status', 'created_at'],
    'ix_leads_country': ['country'],
    'ix_leads_assigned_to_id': ['assigned_to_id'],
}
NEW = {
    'ix_leads_created_id': ['created_at', 'id'],
    'ix_leads_status_created_id': ['status', 'created_at', 'id'],
    'ix_leads_status_treatment_created_id': ['status', 'treatment_id', 'created_at', 'id'],
    'ix_leads_country_created_id': ['country', 'created_at', 'id'],
    'ix_leads_assigned_created_id': ['assigned_to_id', 'created_at', 'id'],
}


def upgrade():
    for name, columns in NEW.items():
        op.create_index(name, 'leads', columns)
    for name in REPLACED:
        op.drop_index(name, table_name='leads')


def downgrade():
    for name, columns in REPLACED.items():
        op.create_index(name, 'leads', columns)
    for name in NEW:
        op.drop_index(name, table_name='leads')
